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
        let module = naga::front::wgsl::parse_str(shader.source).unwrap_or_else(|e| {
            panic!("{}.wgsl: {}", shader.name, e.emit_to_string(shader.source))
        });
        let info = Validator::new(ValidationFlags::all(), Capabilities::empty())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}.wgsl: invalid: {e:?}", shader.name));
        assert!(
            !module.entry_points.is_empty(),
            "{}: no entry points",
            shader.name
        );
        for ep in &module.entry_points {
            let what = format!("{}::{}", shader.name, ep.name);
            let (module, info) = naga::back::pipeline_constants::process_overrides(
                &module,
                &info,
                Some((ep.stage, &ep.name)),
                &PipelineConstants::default(),
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

            let hlsl_options = naga::back::hlsl::Options::default();
            let hlsl_pipeline = naga::back::hlsl::PipelineOptions {
                entry_point: Some((ep.stage, ep.name.clone())),
            };
            let mut hlsl = String::new();
            naga::back::hlsl::Writer::new(&mut hlsl, &hlsl_options, &hlsl_pipeline)
                .write(&module, &info, None)
                .unwrap_or_else(|e| panic!("{what}: HLSL: {e:?}"));

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
}
