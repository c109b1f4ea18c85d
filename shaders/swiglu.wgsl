// SwiGLU: out = silu(gate) * up, where each row of `gu` holds [gate | up], each f4 vec4s wide.

struct Params {
    rows: u32,
    f4: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gu: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

override WG: u32 = 64u;

@compute @workgroup_size(WG, 1, 1)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let row = gid.y;
    if (i >= p.f4 || row >= p.rows) {
        return;
    }
    let g = gu[row * 2u * p.f4 + i];
    let u = gu[row * 2u * p.f4 + p.f4 + i];
    out[row * p.f4 + i] = g / (1.0 + exp(-g)) * u;
}
