// Skinny C (+)= A · Wᵀ for M <= 8 rows of A (decode: one row per sequence). Same Params and
// weight layout as matmul.wgsl (W one output per row, K contiguous), so prefill and decode read
// the very same weight bytes. M is an override constant: the row loops unroll, and every weight
// byte is read exactly once whatever M is. Weights come in any format, unpacked to f32 in
// registers by the format's shaders/common/weights/ file, a block (w_block) at a time.
//
//   gemv_rows:  one invocation per TN outputs, streaming their weight rows along K (register
//               tier: CPU drivers, where each SIMD lane then follows its own sequential
//               streams). Each block of A is loaded once and serves all TN rows: a CPU driver
//               loads storage one lane and one component at a time, so A's loads, not the
//               arithmetic, are what more rows per invocation save. Every lane needs the same
//               block of A: at one row, where the adapter has subgroup operations, one lane
//               loads it and the subgroup shares it (a_leader and a_share, from
//               gemv_rows_shared.wgsl, appended; else gemv_rows_each.wgsl, where every lane
//               loads its own);
//   gemv_split: one workgroup per output, its invocations splitting K, the partial sums reduced
//               in workgroup memory (GPUs without subgroup operations).

// Params and the bindings p, a, w, c: shaders/common/product_bindings.wgsl, prepended.

override WG: u32 = 64u;  // invocations per workgroup (a power of two, <= 256, for gemv_split)
override M: u32 = 1u;    // rows of A, 1..=MAX_M; equals p.m
override TN: u32 = 1u;   // outputs per invocation of gemv_rows, 1..=MAX_TN

const MAX_M: u32 = 8u;
const MAX_TN: u32 = 16u;

fn store(r: u32, n: u32, v: f32) {
    let idx = r * p.ldc + p.c_off + n;
    if (p.accumulate != 0u) {
        c[idx] += v;
    } else {
        c[idx] = v;
    }
}

@compute @workgroup_size(WG, 1, 1)
fn gemv_rows(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    // Lanes past N stream the last row and store nothing: every lane stays in the loop below,
    // which shares A's loads across the subgroup.
    let n0 = (gid.x + gid.y * groups.x * WG) * TN;
    let leader = a_leader();
    var base: array<u32, MAX_TN>;
    for (var j = 0u; j < TN; j++) {
        base[j] = w_base(min(n0 + j, p.n - 1u));
    }
    // Every loop below runs a constant number of times (M, TN and WB are constants), so the
    // compiler unrolls them and these arrays stay in registers.
    var acc: array<vec4<f32>, 128>;  // MAX_M * MAX_TN
    // K in the format's blocks of WB vec4s. Past K a block's weights are zero (block formats
    // pad K to 32) and A's index is clamped to stay in its row.
    for (var b = 0u; b * WB < p.k4; b++) {
        var av: array<array<vec4<f32>, WB>, MAX_M>;
        for (var r = 0u; r < M; r++) {
            for (var i = 0u; i < WB; i++) {
                var v = vec4<f32>(0.0);
                if (leader) {
                    v = a[p.a_off4 + r * p.lda4 + min(b * WB + i, p.k4 - 1u)];
                }
                av[r][i] = a_share(v);
            }
        }
        for (var j = 0u; j < TN; j++) {
            let wb = w_block(base[j], b);
            for (var r = 0u; r < M; r++) {
                var s = acc[r * MAX_TN + j];
                for (var i = 0u; i < WB; i++) {
                    s = fma(av[r][i], wb[i], s);
                }
                acc[r * MAX_TN + j] = s;
            }
        }
    }
    for (var j = 0u; j < TN; j++) {
        if (n0 + j < p.n) {
            for (var r = 0u; r < M; r++) {
                store(r, n0 + j, dot(acc[r * MAX_TN + j], vec4(1.0)));
            }
        }
    }
}

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(WG, 1, 1)
fn gemv_split(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = wid.x + wid.y * groups.x;
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    if (n >= p.n) {
        return;
    }
    let base = w_base(n);
    var acc: array<vec4<f32>, MAX_M>;
    for (var b = lid; b * WB < p.k4; b += WG) {
        let wb = w_block(base, b);
        for (var i = 0u; i < WB; i++) {
            let kk = min(b * WB + i, p.k4 - 1u);
            for (var r = 0u; r < M; r++) {
                acc[r] = fma(a[p.a_off4 + r * p.lda4 + kk], wb[i], acc[r]);
            }
        }
    }
    for (var r = 0u; r < M; r++) {
        partial[lid] = dot(acc[r], vec4(1.0));
        workgroupBarrier();
        for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
            if (lid < stride) {
                partial[lid] += partial[lid + stride];
            }
            workgroupBarrier();
        }
        if (lid == 0u) {
            store(r, n, partial[0]);
        }
        workgroupBarrier();
    }
}
