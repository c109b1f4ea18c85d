// Weight format f32 for the product kernels (src/kernels prepends it): W row n is k4 vec4s.
// Every format defines the same four names, so one kernel source serves them all:
//   wword                  the storage unit of binding `w`;
//   WB                     vec4s of K the GEMVs take per w_block (a block format's 32 weights;
//                          q4_0's 64 where the kernel sets PAIRED_BLOCKS, prepended);
//   w_base(n)              where row n starts, in the format's own unit;
//   w_vec4(base, kk)       the 4 weights at vec4 kk of the row starting at base, as f32;
//   w_block(base, b)       vec4s b·WB .. b·WB + WB − 1 of the row (zeros past K in its block).

alias wword = vec4<f32>;
const WB: u32 = 1u;

fn w_base(n: u32) -> u32 {
    return n * p.k4;
}

fn w_vec4(base: u32, kk: u32) -> vec4<f32> {
    return w[base + kk];
}

fn w_block(base: u32, b: u32) -> array<vec4<f32>, WB> {
    return array<vec4<f32>, WB>(w[base + b]);
}
