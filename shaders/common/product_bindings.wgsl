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

// Output `base`'s weight row times the A row from vec4 `a0`, K = 4 · p.k4, with one
// accumulator in registers: the single-row case of the expert and head products
// (moe_matmul.wgsl, head_matmul.wgsl), whose loops over a block's rows index their accumulators
// dynamically, which puts them in memory (many times slower on lavapipe). Past K a block's
// weights are zero (block formats pad K to 32); A's index is clamped so it stays in its row.
fn row_dot(base: u32, a0: u32) -> f32 {
    var acc = vec4<f32>(0.0);
    for (var blk = 0u; blk * WB < p.k4; blk++) {
        let wb = w_block(base, blk);
        for (var i = 0u; i < WB; i++) {
            acc = fma(a[a0 + min(blk * WB + i, p.k4 - 1u)], wb[i], acc);
        }
    }
    return dot(acc, vec4(1.0));
}
