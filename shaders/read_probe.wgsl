// Streaming sum: the read-bandwidth probe. Each workgroup sums one contiguous chunk of the
// buffer, its invocations reading consecutive vec4s at every step (loads coalesce on GPUs; on
// CPU adapters each thread streams through one region, which prefetchers follow), then adds its
// invocations' sums in workgroup memory and writes one vec4. Writes are one vec4 per workgroup,
// a vanishing share of the traffic: what is timed is reading.

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
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let chunk = (p.n4 + groups.x - 1u) / groups.x;
    let start = wid.x * chunk;
    let end = min(start + chunk, p.n4);
    // Four independent sums: loads need not wait for the previous add.
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    var s3 = vec4<f32>(0.0);
    var i = start + lid;
    for (; i + 3u * WG < end; i += 4u * WG) {
        s0 += src[i];
        s1 += src[i + WG];
        s2 += src[i + 2u * WG];
        s3 += src[i + 3u * WG];
    }
    for (; i < end; i += WG) {
        s0 += src[i];
    }
    partial[lid] = (s0 + s1) + (s2 + s3);
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
