// Weight format q8_0: W row n is ⌈k4 / 8⌉ GGUF block_q8_0s of 34 bytes (an f16 scale d, then
// 32 int8 q; x = q · d), bytes read as u32 words (shaders/common/weights/packed.wgsl). Blocks
// start on even bytes. The names every format defines: see shaders/common/weights/f32.wgsl.

alias wword = u32;
const WB: u32 = 8u;

fn w_base(n: u32) -> u32 {
    return n * ((p.k4 + 7u) / 8u) * 34u;
}

fn w_vec4(base: u32, kk: u32) -> vec4<f32> {
    let blk = base + (kk >> 3u) * 34u;
    return i8x4(w_u32_at(blk + 2u + (kk & 7u) * 4u)) * w_f16_at(blk);
}

// The 34 bytes lie in 9 words from word blk / 4; the quants start 2 bytes into the block, so
// each quant word is one whole word (block at 2 mod 4) or the halves of two.
fn w_block(base: u32, b: u32) -> array<vec4<f32>, WB> {
    let blk = base + b * 34u;
    let i = blk >> 2u;
    let odd = (blk & 2u) != 0u;
    var words: array<u32, 9>;
    for (var j = 0u; j < 9u; j++) {
        words[j] = w[i + j];
    }
    let d = unpack2x16float(select(words[0], words[0] >> 16u, odd)).x;
    var out: array<vec4<f32>, WB>;
    for (var j = 0u; j < 8u; j++) {
        let q = select((words[j] >> 16u) | (words[j + 1u] << 16u), words[j + 1u], odd);
        out[j] = i8x4(q) * d;
    }
    return out;
}
