//! Every WGSL file in `shaders/` is registered, parses, validates, and translates to SPIR-V
//! (Vulkan), MSL (Metal), HLSL (DX12) and GLSL ES 3.1 (GL) for each entry point, so a shader
//! that would break on another platform is caught on this Linux machine.

use gpu_ae::gpu::Shader;
use gpu_ae::kernels::ENTRY_POINTS;
use naga::back::PipelineConstants;
use naga::valid::{Capabilities, ValidationFlags, Validator};

/// Every shader the crate compiles.
fn shaders() -> impl Iterator<Item = &'static Shader> {
    ENTRY_POINTS.iter().map(|(shader, _)| *shader)
}

/// Fragments prepended to other shaders rather than compiled alone.
const FRAGMENTS: &[&str] = &["act", "rng"];

#[test]
fn every_shader_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("shaders/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|name| !FRAGMENTS.contains(&name.as_str()))
        .collect();
    files.sort();
    let mut registered: Vec<String> = shaders().map(|s| s.name.to_string()).collect();
    registered.sort();
    assert_eq!(files, registered, "shaders/*.wgsl vs kernels::ENTRY_POINTS");
    for s in shaders() {
        let own = std::fs::read_to_string(dir.join(format!("{}.wgsl", s.name))).unwrap();
        assert!(
            s.source.ends_with(&own),
            "{}: embedded source is not shaders/{}.wgsl",
            s.name,
            s.name
        );
        assert!(
            s.source.contains("@compute"),
            "{}: no compute entry point",
            s.name
        );
    }
}

#[test]
fn shaders_validate_and_translate_for_every_backend() {
    for shader in shaders() {
        check_variant(shader, 0);
    }
}

/// The f16 storage variant of every shader that has typed bindings (all of them f16) is valid
/// WGSL with the f16 extension and translates for every backend that has f16 (GL has none, and
/// gpu-ae never asks it for f16 tensors).
#[test]
fn f16_variants_validate_and_translate() {
    let mut typed = 0;
    for shader in shaders() {
        let halves = shader
            .typed_bindings()
            .iter()
            .fold(0u32, |m, (b, _)| m | 1 << b);
        if halves != 0 {
            check_variant(shader, halves);
            typed += 1;
        }
    }
    assert!(typed >= 7, "only {typed} shaders have f16 variants");
}

#[test]
fn typed_bindings_are_found_and_named_after_their_variables() {
    let conv = gpu_ae::kernels::conv2d::SHADER.typed_bindings();
    let names: Vec<(u32, &str)> = conv.iter().map(|(b, a)| (*b, a.as_str())).collect();
    assert_eq!(
        names,
        [(1, "a_src_t"), (2, "b_src_t"), (3, "out_t"), (4, "act_y_t")]
    );
    let loss = gpu_ae::kernels::loss::SHADER.typed_bindings();
    assert!(
        loss.iter().all(|(b, _)| *b != 3),
        "loss[] is f32 only: {loss:?}"
    );
    let source = gpu_ae::kernels::loss::SHADER.variant_source(1 << 4);
    assert!(source.starts_with("enable f16;\n"), "{source:.80}");
    assert!(source.contains("alias dx_t = f16;") && source.contains("alias x_t = f32;"));
}

/// Parses, validates and translates one storage variant (`halves`, see `Shader::halves`).
fn check_variant(shader: &Shader, halves: u32) {
    let source = shader.variant_source(halves);
    let f16 = halves != 0;
    let tag = if f16 { " (f16)" } else { "" };
    let module = naga::front::wgsl::parse_str(&source)
        .unwrap_or_else(|e| panic!("{}.wgsl{tag}: {}", shader.name, e.emit_to_string(&source)));
    let caps = if f16 {
        Capabilities::SHADER_FLOAT16
    } else {
        Capabilities::empty()
    };
    let info = Validator::new(ValidationFlags::all(), caps)
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}.wgsl{tag}: invalid: {e:?}", shader.name));
    assert!(
        !module.entry_points.is_empty(),
        "{}: no entry points",
        shader.name
    );
    for ep in &module.entry_points {
        let what = format!("{}::{}{tag}", shader.name, ep.name);
        // Overrides without a default (a specialised shader's configuration) get 1, a value
        // every one of them accepts.
        let constants: PipelineConstants = module
            .overrides
            .iter()
            .filter(|(_, o)| o.init.is_none())
            .map(|(_, o)| (o.name.clone().expect("overrides are named"), 1.0))
            .collect();
        let (module, info) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some((ep.stage, &ep.name)),
            &constants,
        )
        .unwrap_or_else(|e| panic!("{what}: overrides: {e:?}"));

        naga::back::spv::write_vec(
            &module,
            &info,
            &naga::back::spv::Options::default(),
            Some(&naga::back::spv::PipelineOptions {
                shader_stage: ep.stage,
                entry_point: ep.name.clone(),
            }),
        )
        .unwrap_or_else(|e| panic!("{what}: SPIR-V: {e:?}"));

        naga::back::msl::write_string(
            &module,
            &info,
            &naga::back::msl::Options::default(),
            &naga::back::msl::PipelineOptions {
                entry_point: Some((ep.stage, ep.name.clone())),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{what}: MSL: {e:?}"));

        // DX12 has f16 from shader model 6.2.
        let hlsl_options = naga::back::hlsl::Options {
            shader_model: if f16 {
                naga::back::hlsl::ShaderModel::V6_2
            } else {
                naga::back::hlsl::Options::default().shader_model
            },
            ..Default::default()
        };
        let hlsl_pipeline = naga::back::hlsl::PipelineOptions {
            entry_point: Some((ep.stage, ep.name.clone())),
        };
        let mut hlsl = String::new();
        naga::back::hlsl::Writer::new(&mut hlsl, &hlsl_options, &hlsl_pipeline)
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{what}: HLSL: {e:?}"));

        if f16 {
            continue;
        }
        let glsl_options = naga::back::glsl::Options {
            version: naga::back::glsl::Version::Embedded {
                version: 310,
                is_webgl: false,
            },
            ..Default::default()
        };
        let glsl_pipeline = naga::back::glsl::PipelineOptions {
            shader_stage: ep.stage,
            entry_point: ep.name.clone(),
            multiview: None,
        };
        let mut glsl = String::new();
        naga::back::glsl::Writer::new(
            &mut glsl,
            &module,
            &info,
            &glsl_options,
            &glsl_pipeline,
            naga::proc::BoundsCheckPolicies::default(),
        )
        .and_then(|mut w| w.write())
        .unwrap_or_else(|e| panic!("{what}: GLSL ES 3.1: {e:?}"));
    }
}
