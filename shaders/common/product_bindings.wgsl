// Uniforms and bindings shared by every product kernel (matmul.wgsl, matmul_tiled.wgsl,
// gemv.wgsl, gemv_subgroup.wgsl, matmul_coop.wgsl); src/kernels prepends this, after the
// weight format's file in shaders/common/weights/ (which defines `wword` and the functions that
// unpack W), to each of them. C (+)= A · Wᵀ: A row r starts at vec4 `a_off4 + r * lda4`; W
// holds `n` rows (outputs) of K = 4 · `k4` weights in the format's layout; output j of row r is
// float `r * ldc + c_off + j` of C.

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
@group(0) @binding(2) var<storage, read> w: array<wword>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
