// Peak cooperative-matrix probe, beside fma_probe.wgsl: every subgroup runs CHAINS independent
// chains of ITERATIONS multiply-accumulates c <- a · b + c on D × D matrices (f16 a and b, f32 c),
// 2 · D³ FLOPs each, with no memory traffic inside the loop. a and b are loaded once from `ab`
// (chosen by the host so every partial sum is exact in f32); the chains' sum is stored so the
// compiler cannot drop the work. src/kernels/matrix_probe.rs prepends D and the coop_a / coop_b /
// coop_c aliases (see matmul_coop.wgsl).
//
// Each subgroup writes its D × D result at matrix (workgroup × SUBGROUPS + subgroup id), SUBGROUPS
// the most a workgroup can have (SG over the smallest subgroup size); invocation 0 of
// each workgroup writes how many subgroups it had at `counts`, so the host counts the work done
// whatever subgroup size the driver chose.

struct Params {
    groups: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ab: array<f16>;       // a (D × D) then b, row-major
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // groups × SUBGROUPS matrices
@group(0) @binding(3) var<storage, read_write> counts: array<u32>;

override SG: u32 = 8u;  // the adapter's largest subgroup size: the workgroup size
override SUBGROUPS: u32 = 1u;  // SG / the adapter's smallest subgroup size
override ITERATIONS: u32 = 256u;

@compute @workgroup_size(SG, 1, 1)
fn matrix_probe(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) n_sg: u32,
) {
    if (wid.x >= p.groups) {
        return;
    }
    let a = coopLoadT<coop_a>(&ab[0], D);
    let b = coopLoadT<coop_b>(&ab[D * D], D);
    var c0 = coop_c();
    var c1 = coop_c();
    var c2 = coop_c();
    var c3 = coop_c();
    for (var i = 0u; i < ITERATIONS; i++) {
        c0 = coopMultiplyAdd(a, b, c0);
        c1 = coopMultiplyAdd(a, b, c1);
        c2 = coopMultiplyAdd(a, b, c2);
        c3 = coopMultiplyAdd(a, b, c3);
    }
    // Operands as `let`s: naga 30 does not emit a coopStore's own operand expressions.
    let sum = (c0 + c1) + (c2 + c3);
    let dst = &out[(wid.x * SUBGROUPS + sg_id) * D * D];
    coopStoreT(sum, dst, D);
    if (li == 0u) {
        counts[wid.x] = n_sg;
    }
}
