//! GPU-vs-reference tests for the Adam step over several consecutive steps, with the step
//! number taken from the GPU step counter and the rate from the schedule's words (constant,
//! and cosine with warm-up).

use crate::common::{assert_close, gpu, values};
use gpu_ae::gpu::{Plan, Tensor};
use gpu_ae::kernels::adam::{self, AdamConfig};
use gpu_ae::kernels::step::STATE_LEN;
use gpu_ae::reference::adam as cpu;
use gpu_ae::run::schedule::{LrSchedule, Schedule};

#[test]
fn default_config_is_pytorchs() {
    let cfg = AdamConfig::default();
    assert_eq!((cfg.beta1, cfg.beta2, cfg.eps), (0.9, 0.999, 1e-8));
}

#[test]
fn step_matches_reference_over_consecutive_steps() {
    let gpu = gpu();
    let custom = AdamConfig {
        beta1: 0.8,
        beta2: 0.99,
        eps: 1e-6,
    };
    let cosine = Schedule {
        kind: LrSchedule::Cosine,
        warmup_steps: 3,
        horizon_steps: 1500,
    };
    let warm_constant = Schedule {
        warmup_steps: 2,
        ..Schedule::default()
    };
    // Counts: one element, not a multiple of the 256-wide workgroup nor of its 1024 elements.
    for &(count, cfg, lr, schedule) in &[
        (1, AdamConfig::default(), 1e-3, Schedule::default()),
        (2500, AdamConfig::default(), 1e-3, warm_constant),
        (1027, custom, 0.01, cosine),
    ] {
        // One sentinel element past `count` in every buffer must stay untouched.
        let mut params = values(count as u64, count + 1, -1.0, 1.0);
        let (mut m, mut v) = (vec![0.0; count + 1], vec![0.0; count + 1]);
        let p_t = Tensor::from_f32(&gpu, &[count + 1], &params, "params").unwrap();
        let m_t = Tensor::zeros(&gpu, &[count + 1], "m").unwrap();
        let v_t = Tensor::zeros(&gpu, &[count + 1], "v").unwrap();
        let g_t = Tensor::zeros(&gpu, &[count + 1], "grads").unwrap();
        let state = Tensor::zeros(&gpu, &[STATE_LEN], "state").unwrap();
        let words = Tensor::from_u32(&gpu, &[4], &schedule.words(lr), "schedule").unwrap();
        let mut plan = Plan::new();
        adam::step(
            &mut plan, &gpu, &p_t, &m_t, &v_t, &g_t, &state, &words, cfg, count,
        );
        // The plan is recorded once and replayed at t = 1, 2, 3 and (after a jump) 1000.
        for t in [1u32, 2, 3, 1000] {
            let grads = values(count as u64 * 3 + t as u64, count + 1, -2.0, 2.0);
            g_t.write_f32(&gpu, &grads);
            gpu.queue
                .write_buffer(&state.buffer, 0, bytemuck::cast_slice(&[t - 1, 0, 0, 0]));
            plan.run(&gpu).unwrap();
            cpu::step(
                &mut params[..count],
                &mut m[..count],
                &mut v[..count],
                &grads[..count],
                t,
                schedule.rate(lr, t as u64 - 1),
                cfg,
            );
            let what = format!("adam count {count} lr {lr} {schedule:?} t {t}");
            let (gp, gm, gv) = (
                p_t.read_f32(&gpu).unwrap(),
                m_t.read_f32(&gpu).unwrap(),
                v_t.read_f32(&gpu).unwrap(),
            );
            assert_eq!(
                (gp[count], gm[count], gv[count]),
                (params[count], 0.0, 0.0),
                "{what}: wrote past count"
            );
            assert_close(
                &format!("{what} params"),
                &gp[..count],
                &params[..count],
                1e-6,
                1e-5,
            );
            assert_close(&format!("{what} m"), &gm[..count], &m[..count], 1e-7, 1e-5);
            assert_close(&format!("{what} v"), &gv[..count], &v[..count], 1e-9, 1e-5);
        }
    }
}
