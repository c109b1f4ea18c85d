// Weight format q4_0: W row n is ⌈k4 / 8⌉ GGUF block_q4_0s of 18 bytes (an f16 scale d, then
// 16 bytes of nibbles: byte j holds element j low and element j + 16 high; x = (q − 8) · d),
// bytes read as u32 words (shaders/common/weights/packed.wgsl). Blocks start on even bytes.
// The names every format defines: see shaders/common/weights/f32.wgsl.

alias wword = u32;
const WB: u32 = select(8u, 16u, PAIRED_BLOCKS); // one GGUF block, or two: see w_block

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

// One GGUF block (WB = 8), or two where the kernel allows (PAIRED_BLOCKS, WB = 16: see
// src/kernels/mod.rs): a CPU driver loads storage one lane and one word at a time, and a pair's
// 36 bytes lie in 9 words from a word-aligned start (rows of an even number of blocks, as at
// every real model's K), where one block alone takes 5. From an odd half-word start they take
// 10, as two blocks one by one do. A row of an odd number of blocks ends in a lone block: the
// words after it (the next row's, or past the buffer's spare word) are not read, and its
// partner's scale is zero, so it adds nothing.
fn w_block(base: u32, b: u32) -> array<vec4<f32>, WB> {
    let blk = base + b * (WB / 8u) * 18u;
    let i = blk >> 2u;
    let odd = (blk & 2u) != 0u;
    var words: array<u32, 10>;
    for (var j = 0u; j < 5u; j++) {
        words[j] = w[i + j];
    }
    let lo = q4_0_block(array<u32, 5>(words[0], words[1], words[2], words[3], words[4]), odd, true);
    var out: array<vec4<f32>, WB>;
    for (var j = 0u; j < 8u; j++) {
        out[j] = lo[j];
    }
    if (WB == 16u) {
        let pair = (2u * b + 1u) * 8u < p.k4; // uniform: the same for every row
        if (pair) {
            for (var j = 5u; j < 9u; j++) {
                words[j] = w[i + j];
            }
            if (odd) {
                words[9] = w[i + 9u];
            }
        }
        // The second block starts 18 bytes in: in the fifth word's upper half (from a
        // word-aligned start) or at the sixth word (from an odd one).
        var second: array<u32, 5>;
        for (var j = 0u; j < 5u; j++) {
            second[j] = select(words[4u + j], words[5u + j], odd);
        }
        let hi = q4_0_block(second, !odd, pair);
        for (var j = 0u; j < 8u; j++) {
            out[j + 8u] = hi[j];
        }
    }
    return out;
}

// One GGUF block from the 5 words holding it, starting at the first word's lower half (odd
// false) or upper half (odd true); all zeros when not `live`.
fn q4_0_block(words: array<u32, 5>, odd: bool, live: bool) -> array<vec4<f32>, 8> {
    // A dead block's scale bits may be anything, inf or NaN included: choose, don't multiply.
    let d = select(0.0, unpack2x16float(select(words[0], words[0] >> 16u, odd)).x, live);
    // (q − 8) · d as one fma per weight.
    let dv = vec4<f32>(d);
    let off = vec4<f32>(-8.0 * d);
    var out: array<vec4<f32>, 8>;
    for (var j = 0u; j < 4u; j++) {
        let q = select((words[j] >> 16u) | (words[j + 1u] << 16u), words[j + 1u], odd);
        out[j] = fma(small_u32_to_f32(nibbles4(q, 0u)), dv, off);
        out[j + 4u] = fma(small_u32_to_f32(nibbles4(q, 4u)), dv, off);
    }
    return out;
}
