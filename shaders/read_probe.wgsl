// Streaming sum: the read-bandwidth probe. Each invocation sums a grid-strided run of vec4s
// (consecutive invocations read consecutive vec4s, so loads coalesce on GPUs and fill SIMD lanes
// on CPU adapters); each workgroup then adds its invocations' sums in workgroup memory and
// writes one vec4. Writes are one vec4 per workgroup, a vanishing share of the traffic: what is
// timed is reading.

struct Params {
    n4: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> sums: array<vec4<f32>>;

override WG: u32 = 64u;  // a power of two, at most 256

var<workgroup> partial: array<vec4<f32>, 256>;

@compute @workgroup_size(WG, 1, 1)
fn read_probe(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let stride = groups.x * WG;
    var s = vec4<f32>(0.0);
    for (var i = gid.x; i < p.n4; i += stride) {
        s += src[i];
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if (lid < half) {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        sums[wid.x] = partial[0];
    }
}
