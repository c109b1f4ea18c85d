// Peak arithmetic probe: CHAINS independent vec4 FMA chains of ITERATIONS steps per invocation,
// 8 * CHAINS * ITERATIONS FLOPs each. x <- x * a + b with a < 1 converges, so values stay finite;
// the sum is stored so the compiler cannot drop the work.

struct Params {
    invocations: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;

override WG: u32 = 64u;
override ITERATIONS: u32 = 1024u;

const CHAINS: u32 = 8u;

@compute @workgroup_size(WG, 1, 1)
fn fma_probe(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= p.invocations) {
        return;
    }
    let a = vec4<f32>(0.9990, 0.9991, 0.9992, 0.9993);
    let b = vec4<f32>(0.0010, 0.0011, 0.0012, 0.0013);
    let seed = f32(i % 16u) * 0.0625;
    var x0 = vec4(seed);
    var x1 = vec4(seed + 0.01);
    var x2 = vec4(seed + 0.02);
    var x3 = vec4(seed + 0.03);
    var x4 = vec4(seed + 0.04);
    var x5 = vec4(seed + 0.05);
    var x6 = vec4(seed + 0.06);
    var x7 = vec4(seed + 0.07);
    for (var k = 0u; k < ITERATIONS; k++) {
        x0 = fma(x0, a, b);
        x1 = fma(x1, a, b);
        x2 = fma(x2, a, b);
        x3 = fma(x3, a, b);
        x4 = fma(x4, a, b);
        x5 = fma(x5, a, b);
        x6 = fma(x6, a, b);
        x7 = fma(x7, a, b);
    }
    out[i] = x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7;
}
