// Uniforms and bindings shared by every product kernel (matmul.wgsl, matmul_tiled.wgsl,
// gemv.wgsl, gemv_subgroup.wgsl); src/kernels prepends this, after the `wvec4` weight-type
// alias, to each of them. C (+)= A · Wᵀ: A row r starts at vec4 `a_off4 + r * lda4`; W holds `n`
// rows (outputs) of `k4` vec4s; output j of row r is float `r * ldc + c_off + j` of C.

struct Params {
    m: u32,
    k4: u32,
    n: u32,
    lda4: u32,
    a_off4: u32,
    ldc: u32,
    c_off: u32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<wvec4>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
