// Weight format fp8-e4m3: W row n is one f32 scale word, then k4 words of four OCP FP8 E4M3
// bytes (element 4i in the low byte). x = e4m3(byte) · scale. The names every format defines:
// see shaders/common/weights/f32.wgsl.

alias wword = u32;
const WB: u32 = 1u;

fn w_base(n: u32) -> u32 {
    return n * (p.k4 + 1u);
}

// Four E4M3 bytes of `word` as f32: normals are rebuilt as f32 bits (exponent bias 7 -> 127),
// subnormals (exponent 0) are m · 2^-9.
fn e4m3x4(word: u32) -> vec4<f32> {
    let b = (vec4<u32>(word) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
    let e = (b >> vec4<u32>(3u)) & vec4<u32>(15u);
    let m = b & vec4<u32>(7u);
    let normal = bitcast<vec4<f32>>(((e + vec4<u32>(120u)) << vec4<u32>(23u)) | (m << vec4<u32>(20u)));
    let mag = select(normal, vec4<f32>(m) * (1.0 / 512.0), e == vec4<u32>(0u));
    return select(mag, -mag, (b & vec4<u32>(0x80u)) != vec4<u32>(0u));
}

fn w_vec4(base: u32, kk: u32) -> vec4<f32> {
    return e4m3x4(w[base + 1u + kk]) * bitcast<f32>(w[base]);
}

fn w_block(base: u32, b: u32) -> array<vec4<f32>, WB> {
    return array<vec4<f32>, WB>(w_vec4(base, b));
}
