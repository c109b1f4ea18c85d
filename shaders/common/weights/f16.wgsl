// Weight format f16: W row n is k4 groups of 4 f16s, widened to f32 on
// load. The binding reads them as pairs of u32 (two f16s each) and unpacks with
// unpack2x16float: the same bytes as vec4<f16>, but CPU drivers load storage one 32-bit
// component at a time, so two halves per load instead of one run 1.5× faster on lavapipe.
// The names every format defines: see shaders/common/weights/f32.wgsl.

alias wword = vec2<u32>;
const WB: u32 = 1u;

fn w_base(n: u32) -> u32 {
    return n * p.k4;
}

fn w_vec4(base: u32, kk: u32) -> vec4<f32> {
    let h = w[base + kk];
    return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
}

fn w_block(base: u32, b: u32) -> array<vec4<f32>, WB> {
    return array<vec4<f32>, WB>(w_vec4(base, b));
}
