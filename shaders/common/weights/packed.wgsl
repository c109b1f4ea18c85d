// Byte-addressed reads of the u32 words of `w`, for the block formats whose blocks (34, 18 or
// 17 bytes, GGUF's layouts) do not start on word boundaries. Encoded buffers carry one spare
// word at the end, so reading the word after the last block byte stays in bounds.

// Shifts here are by constants, chosen with selects: the byte offset differs from invocation to
// invocation, and a CPU driver without per-lane variable shifts (x86 before AVX2) would
// otherwise run them one lane at a time.

// The 4 bytes starting `off` (0..=3) bytes into the pair of words lo, hi (little-endian).
fn funnel(lo: u32, hi: u32, off: u32) -> u32 {
    let s1 = (lo >> 8u) | (hi << 24u);
    let s2 = (lo >> 16u) | (hi << 16u);
    let s3 = (lo >> 24u) | (hi << 8u);
    return select(select(s3, s2, off == 2u), select(s1, lo, off == 0u), off < 2u);
}

// The 4 bytes at byte offset `byte` (any alignment), little-endian.
fn w_u32_at(byte: u32) -> u32 {
    let i = byte >> 2u;
    return funnel(w[i], w[i + 1u], byte & 3u);
}

// The byte at offset `off` (0..=3) of `word`.
fn byte_of(word: u32, off: u32) -> u32 {
    return select(select(word >> 24u, word >> 16u, off == 2u), select(word >> 8u, word, off == 0u), off < 2u) & 0xffu;
}

// The f16 at an even byte offset, as f32.
fn w_f16_at(byte: u32) -> f32 {
    let word = w[byte >> 2u];
    return unpack2x16float(select(word, word >> 16u, (byte & 2u) != 0u)).x;
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

// Small unsigned integers as f32 through a signed conversion: x86 has a single instruction for
// i32 -> f32 but needs several for u32 -> f32.
fn small_u32_to_f32(v: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(bitcast<vec4<i32>>(v));
}
