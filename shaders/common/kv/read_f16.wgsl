// KV cache format f16, read side: cached row r is hd4 pairs of u32 words from pair r · hd4, each
// word two f16 (element 2i in its low half), unpacked with WGSL's core unpack2x16float (no
// SHADER_F16 needed). The names every format defines: see read_f32.wgsl.

alias kv_word = vec2<u32>;

fn k_vec4(row: u32, hd4: u32, d4: u32) -> vec4<f32> {
    let w = k_cache[row * hd4 + d4];
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}

fn v_vec4(row: u32, hd4: u32, d4: u32) -> vec4<f32> {
    let w = v_cache[row * hd4 + d4];
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}
