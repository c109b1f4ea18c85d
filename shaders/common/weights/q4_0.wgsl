// Weight format q4_0: W row n is ⌈k4 / 8⌉ GGUF block_q4_0s of 18 bytes (an f16 scale d, then
// 16 bytes of nibbles: byte j holds element j low and element j + 16 high; x = (q − 8) · d),
// bytes read as u32 words (shaders/common/weights/packed.wgsl). Blocks start on even bytes.
// The names every format defines: see shaders/common/weights/f32.wgsl.

alias wword = u32;
const WB: u32 = 8u;

fn w_base(n: u32) -> u32 {
    return n * ((p.k4 + 7u) / 8u) * 18u;
}

fn w_vec4(base: u32, kk: u32) -> vec4<f32> {
    let blk = base + (kk >> 3u) * 18u;
    let v = kk & 7u; // vec4s 0..3 are low nibbles of quant words 0..3, 4..7 the high ones
    let q = nibbles4(w_u32_at(blk + 2u + (v & 3u) * 4u), (v >> 2u) * 4u);
    let d = w_f16_at(blk);
    return fma(small_u32_to_f32(q), vec4<f32>(d), vec4<f32>(-8.0 * d));
}

// The 18 bytes lie in 5 words from word blk / 4 (see q8_0.wgsl for the halves).
fn w_block(base: u32, b: u32) -> array<vec4<f32>, WB> {
    let blk = base + b * 18u;
    let i = blk >> 2u;
    let odd = (blk & 2u) != 0u;
    var words: array<u32, 5>;
    for (var j = 0u; j < 5u; j++) {
        words[j] = w[i + j];
    }
    let d = unpack2x16float(select(words[0], words[0] >> 16u, odd)).x;
    // (q − 8) · d as one fma per weight.
    let dv = vec4<f32>(d);
    let off = vec4<f32>(-8.0 * d);
    var out: array<vec4<f32>, WB>;
    for (var j = 0u; j < 4u; j++) {
        let q = select((words[j] >> 16u) | (words[j + 1u] << 16u), words[j + 1u], odd);
        out[j] = fma(small_u32_to_f32(nibbles4(q, 0u)), dv, off);
        out[j + 4u] = fma(small_u32_to_f32(nibbles4(q, 4u)), dv, off);
    }
    return out;
}
