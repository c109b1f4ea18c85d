// C (+)= A · Wᵀ on cooperative matrices (tensor cores; simdgroup matrices on Apple): the same
// products, layout and Params as matmul.wgsl (W one output per row, K contiguous), f16 A and W,
// f32 accumulate. src/kernels/matmul_coop.rs prepends the variant: D (8 or 16, the square matrix
// size the adapter lists) and the aliases coop_a / coop_b / coop_c of coop_matDxD<f16, A>,
// <f16, B> and <f32, C>; then the weight type and the product bindings.
//
// A workgroup computes a BM × BN tile of C, BM = SG_M · 2D and BN = SG_N · 2D: SG_M × SG_N
// subgroups, each 2 × 2 matrices of D × D. K advances BK = 2D at a time: every invocation helps
// stage a BM × BK tile of A (f32 activations, converted to f16 on load) and a BN × BK tile of W
// (converted to f16 if stored as f32) in workgroup memory, zeros past M, N and K; then each
// subgroup multiplies its four matrices out of those tiles. At the end the accumulators go
// through workgroup memory so stores past M or N can be skipped and `accumulate` can add C.
//
// The workgroup has SG_M · SG_N · SG invocations, SG the adapter's largest subgroup size, so there
// are at least SG_M · SG_N subgroups whatever size the driver picks; subgroups past that count
// only help stage. Which matrices a subgroup owns is uniform within it, which is all cooperative
// operations need, but naga's uniformity analysis is per workgroup and has no other switch: the
// prelude turns its derivative_uniformity rule (the one it reports this under) off.

// Params and the bindings p, a, w, c: shaders/common/product_bindings.wgsl, prepended.

override SG_M: u32 = 2u;  // subgroups along M (1..=2)
override SG_N: u32 = 2u;  // subgroups along N (1..=2)
override SG: u32 = 8u;    // the adapter's largest subgroup size

const BK: u32 = 2u * D;            // K per step
const BK4: u32 = BK / 4u;
const MAX_B: u32 = 4u * D;         // largest BM or BN (2 subgroups × 2 matrices)

var<workgroup> a_tile: array<f16, 8u * D * D>;   // MAX_B × BK, row-major (K contiguous)
var<workgroup> w_tile: array<f16, 8u * D * D>;   // MAX_B × BK: B (K × N) column-major
var<workgroup> c_tile: array<f32, 16u * D * D>;  // MAX_B × MAX_B, row-major

@compute @workgroup_size(SG_M * SG_N * SG, 1, 1)
fn matmul_coop(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_id) sg_id: u32,
) {
    let bm = SG_M * 2u * D;
    let bn = SG_N * 2u * D;
    let threads = SG_M * SG_N * SG;
    let row_base = wid.y * bm;
    let col_base = wid.x * bn;
    let owner = sg_id < SG_M * SG_N;
    // This subgroup's 2D × 2D block of the tile.
    let r0 = (sg_id / SG_N) * 2u * D;
    let c0 = (sg_id % SG_N) * 2u * D;
    var c00 = coop_c();
    var c01 = coop_c();
    var c10 = coop_c();
    var c11 = coop_c();

    for (var k0 = 0u; k0 < p.k4; k0 += BK4) {
        for (var l = li; l < bm * BK4; l += threads) {
            let r = l / BK4;
            let kk = l % BK4;
            var v = vec4<f32>(0.0);
            if (row_base + r < p.m && k0 + kk < p.k4) {
                v = a[p.a_off4 + (row_base + r) * p.lda4 + k0 + kk];
            }
            let h = vec4<f16>(v);
            let o = r * BK + kk * 4u;
            a_tile[o] = h.x;
            a_tile[o + 1u] = h.y;
            a_tile[o + 2u] = h.z;
            a_tile[o + 3u] = h.w;
        }
        for (var l = li; l < bn * BK4; l += threads) {
            let r = l / BK4;
            let kk = l % BK4;
            var v = vec4<f16>(0.0);
            if (col_base + r < p.n && k0 + kk < p.k4) {
                v = vec4<f16>(w_vec4(w_base(col_base + r), k0 + kk));
            }
            let o = r * BK + kk * 4u;
            w_tile[o] = v.x;
            w_tile[o + 1u] = v.y;
            w_tile[o + 2u] = v.z;
            w_tile[o + 3u] = v.w;
        }
        workgroupBarrier();
        if (owner) {
            for (var kk = 0u; kk < BK; kk += D) {
                let a0 = coopLoadT<coop_a>(&a_tile[r0 * BK + kk], BK);
                let a1 = coopLoadT<coop_a>(&a_tile[(r0 + D) * BK + kk], BK);
                let b0 = coopLoad<coop_b>(&w_tile[c0 * BK + kk], BK);
                let b1 = coopLoad<coop_b>(&w_tile[(c0 + D) * BK + kk], BK);
                c00 = coopMultiplyAdd(a0, b0, c00);
                c01 = coopMultiplyAdd(a0, b1, c01);
                c10 = coopMultiplyAdd(a1, b0, c10);
                c11 = coopMultiplyAdd(a1, b1, c11);
            }
        }
        workgroupBarrier();
    }

    if (owner) {
        // naga 30 does not emit the operands of a coopStore statement itself: every operand is
        // a `let`, which is emitted before it.
        let m00 = c00;
        let m01 = c01;
        let m10 = c10;
        let m11 = c11;
        let p00 = &c_tile[r0 * bn + c0];
        let p01 = &c_tile[r0 * bn + c0 + D];
        let p10 = &c_tile[(r0 + D) * bn + c0];
        let p11 = &c_tile[(r0 + D) * bn + c0 + D];
        coopStoreT(m00, p00, bn);
        coopStoreT(m01, p01, bn);
        coopStoreT(m10, p10, bn);
        coopStoreT(m11, p11, bn);
    }
    workgroupBarrier();
    for (var l = li; l < bm * bn; l += threads) {
        let row = row_base + l / bn;
        let col = col_base + l % bn;
        if (row < p.m && col < p.n) {
            let idx = row * p.ldc + p.c_off + col;
            var v = c_tile[l];
            if (p.accumulate != 0u) {
                v += c[idx];
            }
            c[idx] = v;
        }
    }
}
