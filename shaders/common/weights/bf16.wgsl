// Weight format bf16: W row n is 2·k4 u32 words, each two bf16 (element 2i in the low half).
// A bf16 is the top half of an f32, so unpacking is a shift or a mask. The names every format
// defines: see shaders/common/weights/f32.wgsl.

alias wword = u32;
const WB: u32 = 1u;

fn w_base(n: u32) -> u32 {
    return n * p.k4 * 2u;
}

fn w_vec4(base: u32, kk: u32) -> vec4<f32> {
    let lo = w[base + 2u * kk];
    let hi = w[base + 2u * kk + 1u];
    return bitcast<vec4<f32>>(
        vec4<u32>(lo << 16u, lo & 0xffff0000u, hi << 16u, hi & 0xffff0000u)
    );
}

fn w_block(base: u32, b: u32) -> array<vec4<f32>, WB> {
    return array<vec4<f32>, WB>(w_vec4(base, b));
}
