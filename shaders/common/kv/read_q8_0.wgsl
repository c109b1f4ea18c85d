// KV cache format q8_0, read side: cached row r is ⌈hd4 / 8⌉ GGUF block_q8_0s of 34 bytes (an
// f16 scale d, then 32 int8 q; x = q · d) from byte r · row_bytes, rows back to back, read as u32
// words. Blocks start on even bytes, so each group of four quants is one whole word (block at 0
// mod 4: quants 2 bytes in) or the halves of two; the buffer's spare last word keeps the second
// word in bounds. A head_dim that is not a multiple of 32 leaves zeros at the end of the last
// block, which no d4 < hd4 reads. The names every format defines: see read_f32.wgsl.

alias kv_word = u32;

// Byte offset of the block holding vec4 d4 of row `row`.
fn kv_block_byte(row: u32, hd4: u32, d4: u32) -> u32 {
    return (row * ((hd4 + 7u) / 8u) + (d4 >> 3u)) * 34u;
}

// The four int8 of quant word `q` (element 0 in the low byte) times the scale in `d_word`:
// `lo`, `hi` are the words at and after the quants' byte `q_byte`; `blk` is the block's byte.
fn kv_q8_vec4(lo: u32, hi: u32, q_byte: u32, d_word: u32, blk: u32) -> vec4<f32> {
    let q = select(lo, (lo >> 16u) | (hi << 16u), (q_byte & 2u) != 0u);
    let d = unpack2x16float(select(d_word, d_word >> 16u, (blk & 2u) != 0u)).x;
    let v = bitcast<vec4<i32>>(vec4<u32>(q) << vec4<u32>(24u, 16u, 8u, 0u));
    return vec4<f32>(v >> vec4<u32>(24u)) * d;
}

fn k_vec4(row: u32, hd4: u32, d4: u32) -> vec4<f32> {
    let blk = kv_block_byte(row, hd4, d4);
    let q = blk + 2u + (d4 & 7u) * 4u;
    let i = q >> 2u;
    return kv_q8_vec4(k_cache[i], k_cache[i + 1u], q, k_cache[blk >> 2u], blk);
}

fn v_vec4(row: u32, hd4: u32, d4: u32) -> vec4<f32> {
    let blk = kv_block_byte(row, hd4, d4);
    let q = blk + 2u + (d4 & 7u) * 4u;
    let i = q >> 2u;
    return kv_q8_vec4(v_cache[i], v_cache[i + 1u], q, v_cache[blk >> 2u], blk);
}
