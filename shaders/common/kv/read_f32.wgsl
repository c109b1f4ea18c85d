// KV cache format f32, read side (prepended to the attention shaders): cached row r (one head
// at one position) is hd4 vec4<f32>s from vec4 r · hd4. The names every format defines:
//   kv_word                       the element type of the `k_cache` and `v_cache` bindings;
//   k_vec4(row, hd4, d4) -> vec4  elements 4·d4 .. 4·d4 + 3 of cached K row `row` (heads of
//   v_vec4(row, hd4, d4) -> vec4  hd4 vec4s), unpacked to f32; the same of V.

alias kv_word = vec4<f32>;

fn k_vec4(row: u32, hd4: u32, d4: u32) -> vec4<f32> {
    return k_cache[row * hd4 + d4];
}

fn v_vec4(row: u32, hd4: u32, d4: u32) -> vec4<f32> {
    return v_cache[row * hd4 + d4];
}
