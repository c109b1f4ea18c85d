// Weight format f16 (after `enable f16;`): W row n is k4 vec4<f16>s, widened to f32 on load.
// The names every format defines: see shaders/common/weights/f32.wgsl.

alias wword = vec4<f16>;
const WB: u32 = 1u;

fn w_base(n: u32) -> u32 {
    return n * p.k4;
}

fn w_vec4(base: u32, kk: u32) -> vec4<f32> {
    return vec4<f32>(w[base + kk]);
}

fn w_block(base: u32, b: u32) -> array<vec4<f32>, WB> {
    return array<vec4<f32>, WB>(vec4<f32>(w[base + b]));
}
