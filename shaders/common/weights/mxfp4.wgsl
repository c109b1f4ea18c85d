// Weight format mxfp4 (OCP MX v1.0) in GGUF's block_mxfp4 layout: W row n is ⌈k4 / 8⌉ blocks
// of 17 bytes (an E8M0 scale 2^(e − 127), then 16 bytes of E2M1 nibbles in q4_0's order),
// bytes read as u32 words (shaders/common/weights/packed.wgsl); blocks start on any byte.
// The names every format defines: see shaders/common/weights/f32.wgsl.

alias wword = u32;
const WB: u32 = 8u;

fn w_base(n: u32) -> u32 {
    return n * ((p.k4 + 7u) / 8u) * 17u;
}

// E2M1 nibbles (sign, 2 exponent bits e, 1 mantissa bit m) as f32: 0 or 0.5 (subnormal),
// else (1 + m / 2) · 2^(e − 1), rebuilt as f32 bits (ldexp is a slow call on CPU drivers).
fn e2m1x4(q: vec4<u32>) -> vec4<f32> {
    let e = (q >> vec4<u32>(1u)) & vec4<u32>(3u);
    let m = q & vec4<u32>(1u);
    let normal = bitcast<vec4<f32>>(((e + vec4<u32>(126u)) << vec4<u32>(23u)) | (m << vec4<u32>(22u)));
    let mag = select(0.5 * small_u32_to_f32(m), normal, e != vec4<u32>(0u));
    return select(mag, -mag, (q & vec4<u32>(8u)) != vec4<u32>(0u));
}

// 2^(e − 127) as f32 bits (e = 0 only in an all-zero block, where any scale gives zeros).
fn e8m0(e: u32) -> f32 {
    return bitcast<f32>(e << 23u);
}

fn w_vec4(base: u32, kk: u32) -> vec4<f32> {
    let blk = base + (kk >> 3u) * 17u;
    let v = kk & 7u;
    let q = nibbles4(w_u32_at(blk + 1u + (v & 3u) * 4u), (v >> 2u) * 4u);
    let s = e8m0(byte_of(w[blk >> 2u], blk & 3u));
    return e2m1x4(q) * s;
}

// The 17 bytes lie in 5 words from word blk / 4, at any of the four byte offsets.
fn w_block(base: u32, b: u32) -> array<vec4<f32>, WB> {
    let blk = base + b * 17u;
    let i = blk >> 2u;
    let off = blk & 3u;
    var words: array<u32, 5>;
    for (var j = 0u; j < 5u; j++) {
        words[j] = w[i + j];
    }
    let s = e8m0(byte_of(words[0], off));
    // Quant word j starts at byte blk + 1 + 4j: byte off + 1 of words[j], or words[j + 1].
    var out: array<vec4<f32>, WB>;
    for (var j = 0u; j < 4u; j++) {
        let q = select(funnel(words[j], words[j + 1u], off + 1u), words[j + 1u], off == 3u);
        out[j] = e2m1x4(nibbles4(q, 0u)) * s;
        out[j + 4u] = e2m1x4(nibbles4(q, 4u)) * s;
    }
    return out;
}
