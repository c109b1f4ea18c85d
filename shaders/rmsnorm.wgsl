// RMSNorm: y = x / sqrt(mean(x^2) + eps) * gamma, one workgroup per row.
//
// `d` is the true width (the mean divides by it); rows are d4 vec4s wide, padded with zeros,
// which add nothing to the sum. Input rows start at `in_off4 + row * in_stride4`, so a stride
// can pick the last token of each prompt before the LM head.

struct Params {
    rows: u32,
    d: u32,
    d4: u32,
    in_off4: u32,
    in_stride4: u32,
    out_stride4: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gamma: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;

override WG: u32 = 64u;  // a power of two, at most 256

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(WG, 1, 1)
fn rmsnorm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.y * groups.x;
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    if (row >= p.rows) {
        return;
    }
    let base = p.in_off4 + row * p.in_stride4;
    var s = 0.0;
    for (var i = lid; i < p.d4; i += WG) {
        let v = x[base + i];
        s += dot(v, v);
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let scale = inverseSqrt(partial[0] / f32(p.d) + p.eps);
    let out = row * p.out_stride4;
    for (var i = lid; i < p.d4; i += WG) {
        y[out + i] = x[base + i] * scale * gamma[i];
    }
}
