// Skinny C (+)= A · Wᵀ for M <= 8 rows, one subgroup per output: the subgroup's invocations
// split K (neighbours read neighbouring weights, so loads coalesce) and subgroupAdd reduces
// without workgroup memory or barriers. Same Params and layout as gemv.wgsl; used where the
// adapter has SUBGROUP and a fixed subgroup size, which the host passes as SG.

// Params and the bindings p, a, w, c: shaders/common/product_bindings.wgsl, prepended.

override WG: u32 = 64u;  // invocations per workgroup, a multiple of SG
override SG: u32 = 32u;  // the adapter's subgroup size
override M: u32 = 1u;    // rows of A, 1..=MAX_M; equals p.m

const MAX_M: u32 = 8u;

@compute @workgroup_size(WG, 1, 1)
fn gemv_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let group = wid.x + wid.y * groups.x;
    let n = group * (WG / SG) + lid / SG;
    // Out-of-range subgroups still take part (clamped loads) so the reduction is uniform.
    let row = min(n, p.n - 1u);
    let base = w_base(row);
    var acc: array<vec4<f32>, MAX_M>;
    // Lanes split K by the format's blocks (WB vec4s); past K a block's weights are zero and
    // A's index is clamped to stay in its row.
    for (var b = lane; b * WB < p.k4; b += SG) {
        let wb = w_block(base, b);
        for (var i = 0u; i < WB; i++) {
            let kk = min(b * WB + i, p.k4 - 1u);
            for (var r = 0u; r < M; r++) {
                acc[r] = fma(a[p.a_off4 + r * p.lda4 + kk], wb[i], acc[r]);
            }
        }
    }
    for (var r = 0u; r < M; r++) {
        let total = subgroupAdd(dot(acc[r], vec4(1.0)));
        if (lane == 0u && n < p.n) {
            let idx = r * p.ldc + p.c_off + n;
            if (p.accumulate != 0u) {
                c[idx] += total;
            } else {
                c[idx] = total;
            }
        }
    }
}
