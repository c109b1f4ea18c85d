// The output of a mixture-of-experts layer: h[t] += Σ_j gate[t·k + j] · y[slot(t·k + j)], where
// y holds the experts' outputs in sorted rows (shaders/moe_route.wgsl) and slot maps an
// assignment to its sorted row. Rows are d4 vec4s wide.

struct Params {
    tokens: u32,
    k: u32,
    d4: u32,
    slot_at: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<storage, read> route: array<u32>;
@group(0) @binding(4) var<storage, read_write> h: array<vec4<f32>>;

override WG: u32 = 64u;

@compute @workgroup_size(WG, 1, 1)
fn moe_combine(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let t = gid.y;
    if (c >= p.d4 || t >= p.tokens) {
        return;
    }
    var acc = vec4<f32>(0.0);
    for (var j = 0u; j < p.k; j++) {
        let i = t * p.k + j;
        acc = fma(vec4<f32>(gate[i]), y[route[p.slot_at + i] * p.d4 + c], acc);
    }
    h[t * p.d4 + c] += acc;
}
