// Byte-addressed reads of the u32 words of `w`, for the block formats whose blocks (34, 18 or
// 17 bytes, GGUF's layouts) do not start on word boundaries. Encoded buffers carry one spare
// word at the end, so reading the word after the last block byte stays in bounds.

// The 4 bytes at byte offset `byte` (any alignment), little-endian.
fn w_u32_at(byte: u32) -> u32 {
    let i = byte >> 2u;
    let sh = (byte & 3u) * 8u;
    // A shift by 32 keeps only the low 5 bits in WGSL; the select discards that case anyway.
    return select((w[i] >> sh) | (w[i + 1u] << (32u - sh)), w[i], sh == 0u);
}

// The f16 at an even byte offset, as f32.
fn w_f16_at(byte: u32) -> f32 {
    return unpack2x16float(w[byte >> 2u] >> ((byte & 2u) * 8u)).x;
}

// Four int8 of `word` as f32 (element 0 in the low byte).
fn i8x4(word: u32) -> vec4<f32> {
    let v = bitcast<vec4<i32>>(vec4<u32>(word) << vec4<u32>(24u, 16u, 8u, 0u));
    return vec4<f32>(v >> vec4<u32>(24u));
}

// Four nibbles of `word` at bits sh, sh + 8, sh + 16, sh + 24 (sh 0: low nibbles, 4: high).
fn nibbles4(word: u32, sh: u32) -> vec4<u32> {
    return (vec4<u32>(word) >> (vec4<u32>(0u, 8u, 16u, 24u) + vec4<u32>(sh))) & vec4<u32>(15u);
}
