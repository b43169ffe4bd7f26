//! The page's self-test (`index.html?selftest`): the library's kernel checks
//! ([`gpu_ae::kernels::checks`], which `tests/kernels` runs too) on the browser's WebGPU
//! adapter against the crate's CPU reference (the same Rust, compiled to WASM), then conv-vae
//! trained for a few epochs on a slice of MNIST, whose loss must fall. The outcome is one JSON
//! object; the headless browser test reads it from the page.

use gpu_ae::gpu::Gpu;
use gpu_ae::kernels::checks::{self, Check};
use gpu_ae::platform::Instant;
use serde_json::{Value, json};

/// Training images of the self-test's slice, batch size, epochs.
const TRAIN_IMAGES: usize = 512;
const TRAIN_BATCH: usize = 64;
const TRAIN_EPOCHS: usize = 4;

/// Every kernel check of [`gpu_ae::kernels::checks`], each logged.
async fn kernels(gpu: &Gpu, log: &dyn Fn(&str)) -> gpu_ae::Result<Vec<Check>> {
    let checks = checks::run(gpu).await?;
    for c in &checks {
        log(&format!(
            "kernel {}: worst error {:.3} of the tolerance{}",
            c.name,
            c.worst,
            if c.passed() { "" } else { " FAILED" }
        ));
    }
    Ok(checks)
}

/// Mean training loss of each of [`TRAIN_EPOCHS`] epochs of conv-vae (latent 2) on the first
/// [`TRAIN_IMAGES`] MNIST images, and the steps per second.
async fn training(gpu: &'static Gpu, log: &dyn Fn(&str)) -> gpu_ae::Result<(Vec<f64>, f64)> {
    let settings = json!({
        "model": "conv-vae",
        "latent": 2,
        "task": "reconstruct",
        "batch": TRAIN_BATCH,
        "lr": 2e-3,
        "seed": 0,
        "images": TRAIN_IMAGES,
    });
    let (mut trainer, _, _) = crate::new_trainer(gpu, &settings.to_string())?;
    let start = Instant::now();
    let mut losses = Vec::new();
    for epoch in 0..TRAIN_EPOCHS {
        let end = trainer.run_epoch(epoch, 0, &|_| false, &mut |_| {}).await?;
        let p = end.progress();
        log(&format!(
            "epoch {}: loss {:.2} ({} steps)",
            epoch + 1,
            p.mean_loss(),
            p.steps
        ));
        losses.push(p.mean_loss());
    }
    let steps_per_s = trainer.steps_done as f64 / start.elapsed().as_secs_f64();
    Ok((losses, steps_per_s))
}

/// Runs the whole self-test on `gpu` (`None`: it could not be opened) and returns
/// `{"ok", "kernels_checked", "kernels", "loss_first", "loss_last", "losses", "steps",
/// "steps_per_s", "error"}`; `ok` needs every kernel within tolerance (at least five) and the
/// last epoch's loss below the first's.
pub async fn run(gpu: Option<&'static Gpu>, log: &dyn Fn(&str)) -> Value {
    let Some(gpu) = gpu else {
        return json!({ "ok": false, "error": "the GPU is not open" });
    };
    let checks = match kernels(gpu, log).await {
        Ok(c) => c,
        Err(e) => return json!({ "ok": false, "error": format!("kernel checks: {e}") }),
    };
    let passed = checks.iter().filter(|c| c.passed()).count();
    let kernels: Vec<Value> = checks
        .iter()
        .map(|c| json!({ "family": c.name, "worst": c.worst, "ok": c.passed() }))
        .collect();
    let (losses, steps_per_s) = match training(gpu, log).await {
        Ok(r) => r,
        Err(e) => {
            return json!({
                "ok": false,
                "kernels_checked": passed,
                "kernels": kernels,
                "error": format!("training: {e}"),
            });
        }
    };
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    let steps = TRAIN_EPOCHS * TRAIN_IMAGES.div_ceil(TRAIN_BATCH);
    json!({
        "ok": passed == checks.len() && passed >= 5 && last < first,
        "kernels_checked": passed,
        "kernels": kernels,
        "loss_first": first,
        "loss_last": last,
        "losses": losses,
        "steps": steps,
        "steps_per_s": steps_per_s,
    })
}
