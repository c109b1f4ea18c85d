//! The WGSL kernels: one Rust module per shader in `shaders/`, each binding buffers, choosing
//! the dispatch grid and carrying a CPU reference. This file is the one place shader paths
//! appear.

pub mod attention;
pub mod attention_coop;
pub mod copy;
pub mod fma_probe;
pub mod layout;
pub mod matmul;
pub mod matmul_coop;
pub mod matrix_probe;
pub mod mla;
pub mod moe;
pub mod read_probe;
pub mod rmsnorm;
pub mod rope;
pub mod swiglu;
pub mod verify;

use std::borrow::Cow;

pub use tokbench_core::dtype::{KvDtype, WeightDtype};
pub use tokbench_core::kernel_config::{AdapterTraits, KernelConfig, SubgroupSizes};

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
    /// True for a product kernel: it reads weights through the functions of its
    /// [`WeightDtype`]'s `shaders/common/weights/` file and the bindings of
    /// `shaders/common/product_bindings.wgsl`, and both are prepended to its source.
    pub product: bool,
    /// WGSL put first (after the weight type's `enable`): the cooperative-matrix shaders' enables
    /// and their variant (matrix size and types); empty for the others.
    pub prelude: &'static str,
    /// Whether the shader reads or writes the KV cache through a [`KvDtype`]'s functions
    /// (`shaders/common/kv/`), prepended to its source.
    pub kv: KvSide,
    /// True where the shader's `w_block` may take a block format's blocks two at a time
    /// (WGSL `PAIRED_BLOCKS`, prepended: q4_0 then loads 9 words per two blocks instead of 10):
    /// only the one-row rows GEMV, whose unrolled code stays short; longer loops over twice
    /// the block compile for minutes on lavapipe.
    pub paired_blocks: bool,
}

/// How a shader touches the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvSide {
    /// Not at all (or through its own f32 buffers: MLA's latent cache).
    None,
    /// Reads K and V rows (`read_*.wgsl`: `kv_word`, `k_vec4`, `v_vec4`): attention.
    Read,
    /// Writes them (`write_*.wgsl`: `kv_store`, `KV_UNIT`, `k_store`, `v_store`): the
    /// RoPE / cache-write kernel.
    Write,
}

impl Shader {
    /// The full WGSL text, with the weight-type prelude and the product bindings where the
    /// shader is a product kernel, and an f32 KV cache where it touches one.
    pub fn source_for(&self, dtype: WeightDtype) -> Cow<'static, str> {
        self.source_with(dtype, KvDtype::F32)
    }

    /// [`Self::source_for`] with the KV cache in `kv` where the shader touches one.
    pub fn source_with(&self, dtype: WeightDtype, kv: KvDtype) -> Cow<'static, str> {
        match kv_prelude(self.kv, kv) {
            "" => self.weights_source(dtype),
            // The KV shaders have no weights; the prelude's directives must come first.
            kv_text => Cow::Owned(format!("{}{kv_text}{}", self.prelude, self.source)),
        }
    }

    fn weights_source(&self, dtype: WeightDtype) -> Cow<'static, str> {
        // Directives (`enable`) must precede every declaration.
        match (self.product, self.prelude) {
            (true, prelude) => {
                let weights = weight_prelude(dtype);
                Cow::Owned(format!(
                    "{prelude}const PAIRED_BLOCKS: bool = {};\n{weights}{PRODUCT_BINDINGS}{}",
                    self.paired_blocks, self.source
                ))
            }
            (false, "") => Cow::Borrowed(self.source),
            (false, prelude) => Cow::Owned(format!("{prelude}{}", self.source)),
        }
    }
}

/// Uniforms and bindings every product kernel shares.
const PRODUCT_BINDINGS: &str = include_str!("../../shaders/common/product_bindings.wgsl");

macro_rules! shader {
    ($name:literal, trusted: $trusted:expr, product: $product:expr) => {
        shader!($name, $name, trusted: $trusted, product: $product, prelude: "")
    };
    ($name:literal, $file:literal, trusted: $trusted:expr, product: $product:expr, prelude: $prelude:expr) => {
        Shader {
            name: $name,
            path: concat!("shaders/", $file, ".wgsl"),
            source: include_str!(concat!("../../shaders/", $file, ".wgsl")),
            trusted: $trusted,
            product: $product,
            prelude: $prelude,
            kv: KvSide::None,
            paired_blocks: false,
        }
    };
}

/// A kernel's variant: shaders/`base`.wgsl with shaders/`extra`.wgsl appended (the second
/// file defines what the first leaves open), everything else as in `like`.
macro_rules! appended {
    ($name:literal: $base:literal + $extra:literal, ..$like:expr) => {
        Shader {
            name: $name,
            path: concat!("shaders/", $base, ".wgsl + shaders/", $extra, ".wgsl"),
            source: concat!(
                include_str!(concat!("../../shaders/", $base, ".wgsl")),
                include_str!(concat!("../../shaders/", $extra, ".wgsl"))
            ),
            ..$like
        }
    };
}

/// The variant prelude of the cooperative-matrix shaders: `D` and the matrix types of size D.
macro_rules! coop_prelude {
    ($d:literal) => {
        concat!(
            "enable f16;\nenable wgpu_cooperative_matrix;\n",
            // See shaders/matmul_coop.wgsl: ownership of matrices is subgroup-uniform, which
            // naga's per-workgroup analysis cannot see.
            "diagnostic(off, derivative_uniformity);\n",
            "const D: u32 = ",
            $d,
            "u;\nalias coop_a = coop_mat",
            $d,
            "x",
            $d,
            "<f16, A>;\nalias coop_b = coop_mat",
            $d,
            "x",
            $d,
            "<f16, B>;\nalias coop_c = coop_mat",
            $d,
            "x",
            $d,
            "<f32, C>;\n"
        )
    };
}

/// Register-tiled matrix multiply (prefill projections).
pub const MATMUL: Shader = shader!("matmul", trusted: true, product: true);
/// Workgroup-memory tiled matrix multiply (prefill projections on GPUs).
pub const MATMUL_TILED: Shader = shader!("matmul_tiled", trusted: true, product: true);
/// Large-tile matrix multiply with split-K (prefill projections on big GPUs).
pub const MATMUL_LARGE: Shader = shader!("matmul_large", trusted: true, product: true);
/// Skinny multiply for up to 8 rows (decode projections, the LM head): gemv.wgsl with
/// gemv_rows_each.wgsl appended (every lane of `gemv_rows` loads A itself).
pub const GEMV: Shader = appended!("gemv": "gemv" + "gemv_rows_each",
    ..shader!("gemv", trusted: true, product: true));
/// [`GEMV`] whose `gemv_rows` shares each load of A across the subgroup (adapters with
/// SUBGROUP): gemv.wgsl with gemv_rows_shared.wgsl appended.
/// Used at one row only, so its blocks may come in pairs.
pub const GEMV_SHARED_A: Shader = Shader {
    paired_blocks: true,
    ..appended!("gemv_shared_a": "gemv" + "gemv_rows_shared", ..GEMV)
};
/// Skinny multiply reduced with subgroup operations (adapters with SUBGROUP).
pub const GEMV_SUBGROUP: Shader = shader!("gemv_subgroup", trusted: true, product: true);
/// RMSNorm.
pub const RMSNORM: Shader = shader!("rmsnorm", trusted: true, product: false);
/// Rotary embedding and KV-cache write.
pub const ROPE_CACHE: Shader = Shader {
    kv: KvSide::Write,
    ..shader!("rope_cache", trusted: true, product: false)
};
/// Causal flash-style attention for prefill.
pub const ATTENTION_PREFILL: Shader = Shader {
    kv: KvSide::Read,
    ..shader!("attention_prefill", trusted: true, product: false)
};
/// Split-KV attention for decode, with its reduce pass.
pub const ATTENTION_DECODE: Shader = Shader {
    kv: KvSide::Read,
    ..shader!("attention_decode", trusted: true, product: false)
};
/// Decode attention's `subgroup` layout (adapters with SUBGROUP): attention_decode.wgsl with
/// attention_decode_subgroup.wgsl appended.
pub const ATTENTION_DECODE_SUBGROUP: Shader = appended!(
    "attention_decode_subgroup": "attention_decode" + "attention_decode_subgroup",
    ..ATTENTION_DECODE
);
/// SwiGLU activation.
pub const SWIGLU: Shader = shader!("swiglu", trusted: true, product: false);
/// Buffer copy (bandwidth probe, residual reset).
pub const COPY: Shader = shader!("copy", trusted: true, product: false);
/// FMA-chain arithmetic probe.
pub const FMA_PROBE: Shader = shader!("fma_probe", trusted: true, product: false);
/// Cooperative-matrix product on 8 × 8 matrices (Apple, Mesa lavapipe ≥ 26).
pub const MATMUL_COOP8: Shader = shader!("matmul_coop8", "matmul_coop", trusted: true,
    product: true, prelude: coop_prelude!("8"));
/// Cooperative-matrix product on 16 × 16 matrices (NVIDIA, AMD).
pub const MATMUL_COOP16: Shader = shader!("matmul_coop16", "matmul_coop", trusted: true,
    product: true, prelude: coop_prelude!("16"));
/// Prefill attention on 8 × 8 cooperative matrices.
pub const ATTENTION_PREFILL_COOP8: Shader = Shader {
    kv: KvSide::Read,
    ..shader!("attention_prefill_coop8", "attention_prefill_coop", trusted: true,
        product: false, prelude: coop_prelude!("8"))
};
/// Prefill attention on 16 × 16 cooperative matrices.
pub const ATTENTION_PREFILL_COOP16: Shader = Shader {
    kv: KvSide::Read,
    ..shader!("attention_prefill_coop16", "attention_prefill_coop", trusted: true,
        product: false, prelude: coop_prelude!("16"))
};
/// Cooperative multiply-accumulate chain probe on 8 × 8 matrices.
pub const MATRIX_PROBE8: Shader = shader!("matrix_probe8", "matrix_probe", trusted: true,
    product: false, prelude: coop_prelude!("8"));
/// Cooperative multiply-accumulate chain probe on 16 × 16 matrices.
pub const MATRIX_PROBE16: Shader = shader!("matrix_probe16", "matrix_probe", trusted: true,
    product: false, prelude: coop_prelude!("16"));
/// Mixture-of-experts router: top-k, softmax, assignments grouped by expert.
pub const MOE_ROUTE: Shader = shader!("moe_route", trusted: false, product: false);
/// Mixture-of-experts expert products over the router's blocks.
pub const MOE_MATMUL: Shader = shader!("moe_matmul", trusted: false, product: true);
/// Mixture-of-experts output: the gate-weighted sum of each token's expert rows.
pub const MOE_COMBINE: Shader = shader!("moe_combine", trusted: false, product: false);
/// Multi-head latent attention: latent-cache write with rotary parts, decompression, compaction.
pub const MLA: Shader = shader!("mla", trusted: false, product: false);
/// Multi-head latent attention's per-head products (the absorbed W_UK and W_UV).
pub const HEAD_MATMUL: Shader = shader!("head_matmul", trusted: false, product: true);
/// Streaming-sum read-bandwidth probe.
pub const READ_PROBE: Shader = shader!("read_probe", trusted: true, product: false);

/// Every shader, for validation.
pub const ALL: &[Shader] = &[
    MATMUL,
    MATMUL_TILED,
    MATMUL_LARGE,
    GEMV,
    GEMV_SHARED_A,
    GEMV_SUBGROUP,
    RMSNORM,
    ROPE_CACHE,
    ATTENTION_PREFILL,
    ATTENTION_DECODE,
    ATTENTION_DECODE_SUBGROUP,
    SWIGLU,
    COPY,
    FMA_PROBE,
    MATMUL_COOP8,
    MATMUL_COOP16,
    MATRIX_PROBE8,
    MATRIX_PROBE16,
    ATTENTION_PREFILL_COOP8,
    ATTENTION_PREFILL_COOP16,
    READ_PROBE,
    MOE_ROUTE,
    MOE_MATMUL,
    MOE_COMBINE,
    MLA,
    HEAD_MATMUL,
];

/// The WGSL of a KV cache format for a shader that touches the cache on `side`
/// (`shaders/common/kv/`); empty for the others.
fn kv_prelude(side: KvSide, kv: KvDtype) -> &'static str {
    macro_rules! kv {
        ($file:literal) => {
            include_str!(concat!("../../shaders/common/kv/", $file, ".wgsl"))
        };
    }
    match (side, kv) {
        (KvSide::None, _) => "",
        (KvSide::Read, KvDtype::F32) => kv!("read_f32"),
        (KvSide::Read, KvDtype::F16) => kv!("read_f16"),
        (KvSide::Read, KvDtype::Q8_0) => kv!("read_q8_0"),
        (KvSide::Write, KvDtype::F32) => kv!("write_f32"),
        (KvSide::Write, KvDtype::F16) => kv!("write_f16"),
        (KvSide::Write, KvDtype::Q8_0) => kv!("write_q8_0"),
    }
}

/// The WGSL of a weight format for the product kernels: its `shaders/common/weights/` file (the storage type `wword` and the unpacking functions
/// `w_base`, `w_vec4`, `w_block`), after the byte-read helpers where the format is packed in
/// blocks.
fn weight_prelude(dtype: WeightDtype) -> Cow<'static, str> {
    macro_rules! weights {
        ($file:literal) => {
            include_str!(concat!("../../shaders/common/weights/", $file, ".wgsl"))
        };
    }
    let text = match dtype {
        WeightDtype::F32 => weights!("f32"),
        WeightDtype::F16 => weights!("f16"),
        WeightDtype::Bf16 => weights!("bf16"),
        WeightDtype::Fp8E4m3 => weights!("fp8_e4m3"),
        WeightDtype::Q8_0 => weights!("q8_0"),
        WeightDtype::Q4_0 => weights!("q4_0"),
        WeightDtype::Mxfp4 => weights!("mxfp4"),
    };
    if dtype.is_block() {
        Cow::Owned(format!("{}{text}", weights!("packed")))
    } else {
        Cow::Borrowed(text)
    }
}

/// Asserts that the WGSL struct `name` of `shader` has the layout of its Rust twin: the same
/// size, and the same fields in the same order at the same offsets (padding fields, whose names
/// start with `_`, may be spelled differently). Build `host` with [`host_layout!`].
#[cfg(test)]
pub(crate) fn assert_uniform_layout(shader: &Shader, name: &str, host: HostLayout) {
    use wgpu::naga;
    let source = shader.source_for(WeightDtype::F32);
    let module = naga::front::wgsl::parse_str(&source).expect("shaders parse");
    let (members, span) = module
        .types
        .iter()
        .find_map(|(_, ty)| match &ty.inner {
            naga::TypeInner::Struct { members, span } if ty.name.as_deref() == Some(name) => {
                Some((members.clone(), *span))
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("{}: no struct {name}", shader.path));
    assert_eq!(
        span as usize, host.size,
        "{}: struct {name} is {span} bytes in WGSL, {} in Rust",
        shader.path, host.size
    );
    let named = |fields: Vec<(String, usize)>| -> Vec<(String, usize)> {
        fields
            .into_iter()
            .filter(|(n, _)| !n.starts_with('_'))
            .collect()
    };
    let wgsl = named(
        members
            .iter()
            .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize))
            .collect(),
    );
    let rust = named(
        host.fields
            .iter()
            .map(|(n, o)| ((*n).to_string(), *o))
            .collect(),
    );
    assert_eq!(
        wgsl, rust,
        "{}: struct {name} fields (name, offset)",
        shader.path
    );
}

/// A uniform struct as Rust lays it out: its size and each field's offset, in order.
#[cfg(test)]
pub(crate) struct HostLayout {
    /// `size_of` the struct.
    pub size: usize,
    /// Field names and `offset_of` each.
    pub fields: Vec<(&'static str, usize)>,
}

/// The [`HostLayout`] of a Rust struct: `host_layout!(Params { a, b, c })`.
#[cfg(test)]
macro_rules! host_layout {
    ($t:ty { $($field:ident),* $(,)? }) => {
        $crate::kernels::HostLayout {
            size: std::mem::size_of::<$t>(),
            fields: vec![$((stringify!($field), std::mem::offset_of!($t, $field))),*],
        }
    };
}
#[cfg(test)]
pub(crate) use host_layout;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shader, in every weight type, parses and validates with naga, the compiler wgpu
    /// uses; needs no GPU.
    #[test]
    fn every_shader_validates_with_naga() {
        use wgpu::naga;
        for shader in ALL {
            let kvs: &[KvDtype] = match shader.kv {
                KvSide::None => &[KvDtype::F32],
                _ => &KvDtype::ALL,
            };
            for dtype in WeightDtype::ALL {
                for &kv in kvs {
                    let source = shader.source_with(dtype, kv);
                    let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| {
                        panic!(
                            "{} ({dtype:?}, KV {kv:?}): {}",
                            shader.path,
                            e.emit_to_string(&source)
                        )
                    });
                    naga::valid::Validator::new(
                        naga::valid::ValidationFlags::all(),
                        naga::valid::Capabilities::all(),
                    )
                    .validate(&module)
                    .unwrap_or_else(|e| panic!("{} ({dtype:?}, KV {kv:?}): {e:?}", shader.path));
                }
            }
        }
    }

    #[test]
    fn every_file_in_shaders_is_registered() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if let Some(stem) = name.strip_suffix(".wgsl") {
                // A path may name several files ("a.wgsl + b.wgsl": b appended to a).
                assert!(
                    ALL.iter().any(|s| s
                        .path
                        .split(" + ")
                        .any(|p| p == format!("shaders/{stem}.wgsl"))),
                    "shaders/{name} is not in kernels::ALL"
                );
            }
        }
    }

    /// Every uniform struct a shader reads has its Rust twin's size and field offsets.
    #[test]
    fn every_params_struct_matches_its_wgsl_twin() {
        for (shader, host) in [
            (COPY, copy::params_layout()),
            (FMA_PROBE, fma_probe::params_layout()),
            (SWIGLU, swiglu::params_layout()),
            (ATTENTION_PREFILL, attention::prefill_params_layout()),
            (ATTENTION_DECODE, attention::decode_params_layout()),
            (MATMUL, matmul::params_layout()),
            (MATMUL_LARGE, matmul::params_layout()),
            (RMSNORM, rmsnorm::params_layout()),
            (ROPE_CACHE, rope::params_layout()),
            (READ_PROBE, read_probe::params_layout()),
        ] {
            assert_uniform_layout(&shader, "Params", host);
        }
        for (shader, name, host) in moe::params_layouts()
            .into_iter()
            .chain(mla::params_layouts())
        {
            assert_uniform_layout(&shader, name, host);
        }
    }

    #[test]
    fn a_uniform_layout_that_differs_is_caught() {
        #[repr(C)]
        struct Swapped {
            n4: u32,
            extra: u32,
        }
        let result = std::panic::catch_unwind(|| {
            assert_uniform_layout(&COPY, "Params", host_layout!(Swapped { n4, extra }))
        });
        assert!(
            result.is_err(),
            "a struct of another size must fail the check"
        );
    }
}
