//! The WGSL kernels: one Rust module per shader in `shaders/`, each binding buffers, choosing
//! the dispatch grid and carrying a CPU reference. This file is the one place shader paths
//! appear.

pub mod layout;
pub mod matmul;
pub mod verify;

/// A WGSL source compiled into the binary.
#[derive(Debug, Clone, Copy)]
pub struct Shader {
    /// Short name, used in pipeline labels and cache keys.
    pub name: &'static str,
    /// Path relative to the repository root, for messages.
    pub path: &'static str,
    /// The WGSL text.
    pub source: &'static str,
    /// True when the dispatch geometry keeps every access in bounds, so the module may be built
    /// without runtime checks (see [`crate::gpu::ShaderChecks`]).
    pub trusted: bool,
}

macro_rules! shader {
    ($name:literal, trusted: $trusted:expr) => {
        Shader {
            name: $name,
            path: concat!("shaders/", $name, ".wgsl"),
            source: include_str!(concat!("../../shaders/", $name, ".wgsl")),
            trusted: $trusted,
        }
    };
}

/// Register-tiled f32 matrix multiply.
pub const MATMUL: Shader = shader!("matmul", trusted: true);

/// Every shader, for validation.
pub const ALL: &[Shader] = &[MATMUL];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shader parses and validates with naga, the compiler wgpu uses; needs no GPU.
    #[test]
    fn every_shader_validates_with_naga() {
        use wgpu::naga;
        for shader in ALL {
            let module = naga::front::wgsl::parse_str(shader.source)
                .unwrap_or_else(|e| panic!("{}: {}", shader.path, e.emit_to_string(shader.source)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::all(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {e:?}", shader.path));
        }
    }

    #[test]
    fn every_file_in_shaders_is_registered() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if let Some(stem) = name.strip_suffix(".wgsl") {
                assert!(
                    ALL.iter().any(|s| s.name == stem),
                    "shaders/{name} is not in kernels::ALL"
                );
            }
        }
    }
}
