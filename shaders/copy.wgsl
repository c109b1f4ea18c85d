// dst = src, vec4 by vec4. The copy probe (peak bandwidth) and the reset of the residual stream
// at the start of each forward pass (standing in for the embedding lookup).

struct Params {
    n4: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

override WG: u32 = 64u;
override PER_INVOCATION: u32 = 4u;  // vec4s per invocation, strided by the grid width

@compute @workgroup_size(WG, 1, 1)
fn copy(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let width = groups.x * WG;
    let first = gid.x + gid.y * width * PER_INVOCATION;
    for (var j = 0u; j < PER_INVOCATION; j++) {
        let i = first + j * width;
        if (i < p.n4) {
            dst[i] = src[i];
        }
    }
}
