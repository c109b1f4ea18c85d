// Skinny C (+)= A · Wᵀ for M <= 8 rows on adapters with SUBGROUP. Each subgroup computes R
// outputs at a time: its lanes split K by the format's blocks (neighbours read neighbouring
// weights, so loads coalesce), each load of A serves the R weight rows, and subgroupAdd reduces
// without workgroup memory or barriers. Same Params and layout as gemv.wgsl.
//
// Correct at any subgroup size the driver picks, so it runs where the size varies (RADV 32/64,
// Intel 8–32, Metal): a workgroup covers WG / SG chunks of R outputs, SG a size in the
// adapter's range, and its subgroups (however many there are) take the chunks in turn by
// subgroup_id: larger subgroups than SG take several each, smaller ones leave some idle. Every lane of a subgroup runs the same number of iterations before each
// subgroup operation: lanes past K load a clamped block and add it times zero.

// Params and the bindings p, a, w, c: shaders/common/product_bindings.wgsl, prepended.

override WG: u32 = 128u; // invocations per workgroup, a multiple of the largest subgroup size
override SG: u32 = 32u;  // the subgroup size the grid is sized for
override R: u32 = 1u;    // outputs per subgroup pass, 1..=MAX_R
override M: u32 = 1u;    // rows of A, 1..=MAX_M; equals p.m

const MAX_M: u32 = 8u;
const MAX_R: u32 = 4u;

// Block b of the R rows at `base`, times A's rows, added to acc (output j of row r at
// r · MAX_R + j); `live` 0 zeroes a clamped block's contribution.
fn add_block(
    acc: ptr<function, array<vec4<f32>, 32>>,  // MAX_M * MAX_R
    base: array<u32, MAX_R>,
    b: u32,
    live: f32,
) {
    var wb: array<array<vec4<f32>, WB>, MAX_R>;
    for (var j = 0u; j < R; j++) {
        wb[j] = w_block(base[j], b);
    }
    // Past K a block's weights are zero (block formats pad K to 32) and A's index is clamped
    // to stay in its row.
    for (var i = 0u; i < WB; i++) {
        let kk = min(b * WB + i, p.k4 - 1u);
        for (var r = 0u; r < M; r++) {
            let av = a[p.a_off4 + r * p.lda4 + kk] * live;
            for (var j = 0u; j < R; j++) {
                (*acc)[r * MAX_R + j] = fma(av, wb[j][i], (*acc)[r * MAX_R + j]);
            }
        }
    }
}

@compute @workgroup_size(WG, 1, 1)
fn gemv_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(subgroup_id) sid: u32,
    @builtin(num_subgroups) nsg: u32,
) {
    // The lane's rank and the count among the subgroup's active invocations: the same as
    // subgroup_invocation_id and subgroup_size in a full subgroup, and still a partition of K
    // in a partial one (Vulkan allows those unless a pipeline requires full subgroups, which
    // wgpu does not ask for).
    let lane = subgroupExclusiveAdd(1u);
    let width = subgroupAdd(1u);
    let group = wid.x + wid.y * groups.x;
    let chunks = WG / SG;
    let blocks = (p.k4 + WB - 1u) / WB;
    // Whole rounds of `width` blocks, then one round with the lanes past the end clamped.
    let rounds = blocks / width;
    let rest = blocks - rounds * width;
    // sid and nsg are the same across the subgroup: so is this loop's trip count.
    for (var chunk = sid; chunk < chunks; chunk += nsg) {
        let n0 = (group * chunks + chunk) * R;
        // Outputs past N read the last row (in bounds) and are not stored.
        var base: array<u32, MAX_R>;
        for (var j = 0u; j < R; j++) {
            base[j] = w_base(min(n0 + j, p.n - 1u));
        }
        var acc: array<vec4<f32>, 32>;
        for (var turn = 0u; turn < rounds; turn++) {
            add_block(&acc, base, turn * width + lane, 1.0);
        }
        if (rest != 0u) {
            let b = rounds * width + lane;
            add_block(&acc, base, min(b, blocks - 1u), select(0.0, 1.0, b < blocks));
        }
        for (var j = 0u; j < R; j++) {
            for (var r = 0u; r < M; r++) {
                let total = subgroupAdd(dot(acc[r * MAX_R + j], vec4(1.0)));
                if (lane == 0u && n0 + j < p.n) {
                    let idx = r * p.ldc + p.c_off + n0 + j;
                    if (p.accumulate != 0u) {
                        c[idx] += total;
                    } else {
                        c[idx] = total;
                    }
                }
            }
        }
    }
}
