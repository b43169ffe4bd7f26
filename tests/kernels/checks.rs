//! The library's kernel checks ([`gpu_ae::kernels::checks`]), the ones the web page's
//! self-test runs in the browser, pass here on the adapter under test too.

use gpu_ae::kernels::checks;
use gpu_ae::platform::block_on;

use crate::common::gpu;

#[test]
fn the_web_self_tests_kernel_checks_pass() {
    let gpu = gpu();
    let results = block_on(checks::run(&gpu)).unwrap();
    let names: Vec<&str> = results.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        ["activation", "linear", "conv2d", "loss", "reduce", "adam"]
    );
    for c in &results {
        assert!(
            c.passed(),
            "{}: worst error {} of the tolerance",
            c.name,
            c.worst
        );
    }
}
