//! The settings records of checkpoints and run.json (`gpu_ae::run::settings`,
//! `gpu_ae::model::record`, the codec `gpu_ae::metadata`): every shipped checkpoint reads and
//! writes back what it holds, keys older checkpoints lack read as the runs that wrote them,
//! bad values are named, and a resume compares records field by field.

use std::path::Path;

use gpu_ae::checkpoint::{self, Checkpoint};
use gpu_ae::metadata::Metadata;
use gpu_ae::model::record::{read_spec, write_spec};
use gpu_ae::model::{Block, HiddenAct, ImageShape, MNIST_WIDTHS, Norm, Task, Upsampling};
use gpu_ae::run::schedule::LrSchedule;
use gpu_ae::run::settings::{RunRecord, differing_setting};

const SHIPPED: [&str; 6] = [
    "assets/models/conv-vae-L2.safetensors",
    "assets/models/conv-vae-L16.safetensors",
    "assets/models/conv-cvae-L2.safetensors",
    "assets/models/emoji-vae-32.safetensors",
    "assets/runs/binarized-mnist/model.safetensors",
    "assets/runs/binarized-mnist/optimizer.safetensors",
];

fn meta(pairs: &[(&str, &str)]) -> Checkpoint {
    meta_of(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn every_shipped_checkpoint_reads_and_writes_back_what_it_holds() {
    for file in SHIPPED {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let ckpt = checkpoint::load(&path).unwrap();
        let record = RunRecord::read(&ckpt, &path).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(read_spec(&ckpt, &path).unwrap(), record.cfg.spec, "{file}");
        let written = record.to_metadata();
        for (k, v) in &ckpt.metadata {
            assert_eq!(written.get(k), Some(v), "{file}: key {k}");
        }
        // And what it writes reads back as the same record.
        let again = RunRecord::read(&meta_of(written), &path).unwrap();
        assert_eq!(again, record, "{file}");
    }
}

fn meta_of(metadata: Metadata) -> Checkpoint {
    Checkpoint {
        tensors: Vec::new(),
        metadata,
    }
}

#[test]
fn keys_an_older_gpu_ae_did_not_write_read_as_its_runs() {
    let old = meta(&[
        ("format", "gpu-ae/1"),
        ("model", "conv-vae"),
        ("latent", "16"),
        ("task", "denoise"),
        ("batch", "128"),
        ("lr", "0.001"),
        ("seed", "3"),
        ("epoch", "2"),
        ("steps", "938"),
    ]);
    let r = RunRecord::read(&old, Path::new("old.safetensors")).unwrap();
    let s = &r.cfg.spec;
    assert_eq!(s.image, ImageShape::MNIST);
    assert_eq!(s.widths, MNIST_WIDTHS.to_vec());
    assert_eq!(s.task, Task::Denoise { noise: 0.5 });
    assert_eq!(
        (s.norm, s.act, s.block, s.upsample),
        (
            Norm::None,
            HiddenAct::Relu,
            Block::Plain,
            Upsampling::Transposed
        )
    );
    assert_eq!(s.leaky_slope, 0.2);
    assert!(s.classes.is_empty());
    assert_eq!(r.cfg.beta, 1.0);
    assert_eq!(r.cfg.schedule.kind, LrSchedule::Constant);
    assert_eq!((r.data.clone(), r.partial), (None, None));
}

#[test]
fn a_bad_or_missing_value_is_named_with_its_file_and_key() {
    let good = [
        ("format", "gpu-ae/1"),
        ("model", "conv-vae"),
        ("latent", "16"),
        ("task", "reconstruct"),
    ];
    let path = Path::new("m.safetensors");
    for (key, value, said) in [
        ("latent", "sixteen", "latent: bad value \"sixteen\""),
        ("latent", "0", "bad latent \"0\""),
        (
            "norm",
            "group",
            "norm: bad value \"group\" (one of none, batch)",
        ),
        ("widths", "16,,32", "widths: bad value \"16,,32\""),
        ("leaky_slope", "-1", "bad leaky_slope"),
        ("task", "paint", "paint"),
        ("model", "mlp", "mlp"),
        ("classes", "[]", "bad classes"),
    ] {
        let mut pairs: Vec<(&str, &str)> =
            good.iter().copied().filter(|(k, _)| *k != key).collect();
        pairs.push((key, value));
        let err = read_spec(&meta(&pairs), path).unwrap_err().to_string();
        assert!(err.starts_with("m.safetensors: "), "{key}: {err}");
        assert!(err.contains(said), "{key}: {err}");
    }
    let no_latent = meta(&good[..1]);
    let err = read_spec(&no_latent, path).unwrap_err().to_string();
    assert!(err.contains("no key `model`"), "{err}");
    let newer = meta(&[("format", "gpu-ae/2")]);
    let err = read_spec(&newer, path).unwrap_err().to_string();
    assert!(err.contains("a newer gpu-ae wrote it?"), "{err}");
}

#[test]
fn a_resume_compares_the_records_field_by_field() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED[3]);
    let run = RunRecord::read(&checkpoint::load(&path).unwrap(), &path).unwrap();
    let mut recorded = run.cfg;
    recorded.schedule.kind = LrSchedule::Constant;
    recorded.spec.act = HiddenAct::LeakyRelu;
    let mut asked = recorded.clone();
    asked.beta = 0.5;
    asked.spec.act = HiddenAct::Relu;
    asked.schedule.kind = LrSchedule::Cosine;
    asked.lr = 3e-4;
    asked.spec.image.size = 64;
    let given = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Only flags typed are compared, in the order typed, each under its own name.
    assert_eq!(
        differing_setting(&recorded, &asked, &given(&["epochs"])),
        None
    );
    assert_eq!(
        differing_setting(&recorded, &asked, &given(&["act", "beta"])),
        Some(("--act".into(), "relu".into(), "leaky-relu".into()))
    );
    assert_eq!(
        differing_setting(&recorded, &asked, &given(&["lr_schedule"])),
        Some(("--lr-schedule".into(), "cosine".into(), "constant".into()))
    );
    // --lr may change on resume; the image shape comes from the data.
    assert_eq!(
        differing_setting(&recorded, &asked, &given(&["lr", "size"])),
        None
    );
    // A setting given at its recorded value is no difference.
    assert_eq!(
        differing_setting(&recorded, &recorded, &given(&["beta", "act"])),
        None
    );
    // The written model spec carries the format tag.
    assert_eq!(
        write_spec(&recorded.spec).get("format").map(String::as_str),
        Some("gpu-ae/1")
    );
}
