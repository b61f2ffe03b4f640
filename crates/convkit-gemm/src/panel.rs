//! Panel sources: the operands of the GEMM, in the order the microkernel reads them.
//!
//! Both operands use one layout. For an *outer* range (rows of A, or columns of B), a *depth*
//! range (the summed dimension) and a *width* (the microkernel's MR for A, NR for B), the
//! panel is `ceil(outer / width)` groups; group `g` holds, for each depth index `p` in order,
//! the `width` values of outer indices `g·width ..` at `p`, zero past the end of the range.

use std::ops::Range;

/// f32 elements of a panel of `outer` indices rounded up to `width`, `depth` deep.
pub const fn packed_len(outer: usize, depth: usize, width: usize) -> usize {
    outer.div_ceil(width) * width * depth
}

/// The groups of the panel of `outer` × `depth_len` with `width` at the start of `dst`: per
/// group, its first outer index, how many of its `width` outer indices lie in `outer` (the
/// rest are zero padding), and its `width·depth_len` values.
pub fn panel_groups(
    dst: &mut [f32],
    outer: Range<usize>,
    depth_len: usize,
    width: usize,
) -> impl Iterator<Item = (usize, usize, &mut [f32])> {
    dst[..packed_len(outer.len(), depth_len, width)]
        .chunks_exact_mut(width * depth_len)
        .enumerate()
        .map(move |(group, panel)| {
            let first = outer.start + group * width;
            (first, width.min(outer.end - first), panel)
        })
}

/// An operand of the GEMM that can write any block of itself in panel order.
pub trait PanelSource: Sync {
    /// Writes the panel of `outer` × `depth` with `width` into the start of `dst`, which holds
    /// at least [`packed_len`] elements.
    fn pack(&self, outer: Range<usize>, depth: Range<usize>, width: usize, dst: &mut [f32]);

    /// Writes the block of `outer` × `depth` as rows instead of panels, when the source
    /// prefers that (a half-precision source whose depth indices are contiguous: widening
    /// its rows is a straight conversion, a panel a transpose): row `i` of the block at
    /// `dst[i·depth.len()..]`, its depth contiguous; `dst` holds at least
    /// `outer.len()·depth.len()` elements. Returns whether it did; the SGEMM then reads the
    /// block's rows in place.
    fn pack_rows(&self, outer: Range<usize>, depth: Range<usize>, dst: &mut [f32]) -> bool {
        let _ = (outer, depth, dst);
        false
    }

    /// The same panel without copying, when the source is already packed that way.
    fn prepacked(&self, outer: Range<usize>, depth: Range<usize>, width: usize) -> Option<&[f32]> {
        let _ = (outer, depth, width);
        None
    }

    /// The source as rows read in place, when each outer index's depths are contiguous:
    /// the data from element `(0, 0)` and the distance between outer indices.
    fn rows(&self) -> Option<(&[f32], usize)> {
        None
    }

    /// The source read in place as columns, when each depth index's outer indices are
    /// contiguous: the data from element `(0, 0)` and the distance between depth indices.
    fn columns(&self) -> Option<(&[f32], usize)> {
        None
    }

    /// The source read in place at a table of depth offsets, when each depth index's outer
    /// indices are contiguous but the indices are not evenly spaced: `(data, steps)` with
    /// element `(j, p)` at `data[steps[p] + j]`, and `data` readable past every step's last
    /// outer index to the next multiple of 16 (whole vectors).
    fn stepped(&self) -> Option<(&[f32], &[u32])> {
        None
    }

    /// With [`PanelSource::stepped`]: the lines its outer indices lie on, `(pitch, kept)`:
    /// outer index `j` is at `data[steps[p] + (j / kept)·pitch + j % kept]` (the `pitch −
    /// kept` elements after each line's kept ones are not outer indices), where the SGEMM's
    /// tile reads such lines (`KernelShape::reads_whole_lines`: a source declares no others).
    /// `None`: every index on one line.
    fn stepped_lines(&self) -> Option<(usize, usize)> {
        None
    }

    /// The source read in place at tables of offsets as A, when neither its outer nor its
    /// depth indices are evenly spaced: element `(i, p)` at `data[outer[i] + steps[p]]`, every
    /// such index inside `data`.
    fn stepped_rows(&self) -> Option<SteppedRows<'_>> {
        None
    }
}

/// A source read in place at tables of offsets (see [`PanelSource::stepped_rows`]).
#[derive(Clone, Copy, Debug)]
pub struct SteppedRows<'a> {
    /// The values.
    pub data: &'a [f32],
    /// Per outer index, its offset into `data`.
    pub outer: &'a [u32],
    /// Per depth index, its offset added to the outer one.
    pub steps: &'a [u32],
}

/// The depth steps of a packed block whose columns are contiguous in the source: step `p`'s
/// `len` values start at `first + p·stride`.
#[derive(Clone, Copy, Debug)]
struct StepRuns {
    first: usize,
    stride: usize,
    steps: usize,
    len: usize,
}

/// A plain matrix given by its strides: element `(outer, depth)` at
/// `data[outer·outer_stride + depth·depth_stride]`.
///
/// Row-major `A` (m×k, leading dimension `lda`) is `StridedMatrix::new(a, lda, 1)`; row-major
/// `B` (k×n, leading dimension `ldb`) is `StridedMatrix::new(b, 1, ldb)`.
#[derive(Clone, Copy, Debug)]
pub struct StridedMatrix<'a> {
    data: &'a [f32],
    outer_stride: usize,
    depth_stride: usize,
}

impl<'a> StridedMatrix<'a> {
    /// A matrix view; indexing is checked when packing.
    pub const fn new(data: &'a [f32], outer_stride: usize, depth_stride: usize) -> Self {
        StridedMatrix {
            data,
            outer_stride,
            depth_stride,
        }
    }

    /// Elements the data must hold for `outer` × `depth` indices (saturating on overflow).
    pub fn extent(&self, outer: usize, depth: usize) -> usize {
        if outer == 0 || depth == 0 {
            return 0;
        }
        (outer - 1)
            .saturating_mul(self.outer_stride)
            .saturating_add((depth - 1).saturating_mul(self.depth_stride))
            .saturating_add(1)
    }

    /// Elements of the underlying slice.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the underlying slice is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Whether `outer` × `depth` indices stay inside the data.
    pub fn covers(&self, outer: usize, depth: usize) -> bool {
        if outer == 0 || depth == 0 {
            return true;
        }
        (outer - 1)
            .checked_mul(self.outer_stride)
            .and_then(|o| (depth - 1).checked_mul(self.depth_stride)?.checked_add(o))
            .is_some_and(|last| last < self.data.len())
    }
}

impl PanelSource for StridedMatrix<'_> {
    fn rows(&self) -> Option<(&[f32], usize)> {
        (self.depth_stride == 1).then_some((self.data, self.outer_stride))
    }

    fn columns(&self) -> Option<(&[f32], usize)> {
        (self.outer_stride == 1).then_some((self.data, self.depth_stride))
    }

    fn pack(&self, outer: Range<usize>, depth: Range<usize>, width: usize, dst: &mut [f32]) {
        let depth_len = depth.len();
        if self.outer_stride == 1 {
            // Each depth step is one contiguous run over the outer range: read front to back
            // once per step and dealt out to the groups. (Group by group, each step's few
            // values came from another row, a walk the prefetchers do not follow:
            // `docs/tuning.md`, StridedMatrix::pack.)
            if depth_len > 0 {
                let first = outer.start + depth.start * self.depth_stride;
                let steps = StepRuns {
                    first,
                    stride: self.depth_stride,
                    steps: depth_len,
                    len: outer.len(),
                };
                transpose8::deal_steps(self.data, steps, width, dst);
            }
            return;
        }
        for (first, valid, panel) in panel_groups(dst, outer, depth_len, width) {
            if self.depth_stride == 1 {
                // Each outer index is a contiguous run of depths: eight rows at a time through
                // 8x8 register transposes, the rest read row by row and written strided.
                let transposed = if transpose8::available() {
                    valid / 8 * 8
                } else {
                    0
                };
                for lane0 in (0..transposed).step_by(8) {
                    let rows: [&[f32]; 8] = std::array::from_fn(|i| {
                        let start = (first + lane0 + i) * self.outer_stride + depth.start;
                        &self.data[start..start + depth_len]
                    });
                    convkit_simd::transpose::interleave8(rows, panel, width, lane0);
                }
                for lane in transposed..width {
                    if lane < valid {
                        let start = (first + lane) * self.outer_stride + depth.start;
                        let row = &self.data[start..start + depth_len];
                        for (slot, &value) in panel[lane..].iter_mut().step_by(width).zip(row) {
                            *slot = value;
                        }
                    } else {
                        panel[lane..]
                            .iter_mut()
                            .step_by(width)
                            .for_each(|slot| *slot = 0.0);
                    }
                }
            } else {
                for (p, lanes) in depth.clone().zip(panel.chunks_exact_mut(width)) {
                    for (lane, value) in lanes.iter_mut().enumerate() {
                        *value = if lane < valid {
                            self.data[(first + lane) * self.outer_stride + p * self.depth_stride]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// Packing with AVX registers: row runs copied in 256-bit moves (rows of eight go through
/// `convkit_simd::transpose`).
mod transpose8 {
    use super::{StepRuns, packed_len};
    use convkit_simd::{IsaPath, Portable, Simd, SimdOp};

    /// Whether this CPU has the AVX2 path the transposes need.
    pub(super) fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            convkit_simd::available(convkit_core::Isa::Avx2)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Deals the runs of `steps` (depth step `p`: `steps.len` values from `steps.first +
    /// p·steps.stride` of `data`) out to the groups of `width` columns of `dst`, laid out as
    /// [`packed_len`] counts them (group `g` holds its `width` values of every step, step
    /// after step), the lanes past the last column zeroed.
    ///
    /// # Panics
    /// If a run ends past `data` or `dst` is shorter than the packed block (checked once, so
    /// that the copies are plain vector moves: the per-run slicing they replace took about 50
    /// instructions per 16 values, `docs/tuning.md`, StridedMatrix::pack).
    pub(super) fn deal_steps(data: &[f32], steps: StepRuns, width: usize, dst: &mut [f32]) {
        let last_end = (steps.steps - 1)
            .checked_mul(steps.stride)
            .and_then(|offset| offset.checked_add(steps.first)?.checked_add(steps.len));
        assert!(
            last_end.is_some_and(|end| end <= data.len()),
            "a depth step's run ends past the matrix"
        );
        assert!(
            dst.len() >= packed_len(steps.len, steps.steps, width),
            "the packed block is shorter than the panels"
        );
        let deal = DealSteps {
            data: data.as_ptr(),
            steps,
            width,
            dst: dst.as_mut_ptr(),
        };
        #[cfg(target_arch = "x86_64")]
        if available() {
            // SAFETY: the AVX2 path was detected; the bounds were checked above.
            unsafe { convkit_simd::Avx2::run(deal) };
            return;
        }
        // SAFETY: the portable path runs anywhere; the bounds were checked above.
        unsafe { Portable::run(deal) };
    }

    /// [`deal_steps`] in whole-vector moves, its bounds checked.
    struct DealSteps {
        data: *const f32,
        steps: StepRuns,
        width: usize,
        dst: *mut f32,
    }

    impl SimdOp for DealSteps {
        type Output = ();

        #[inline(always)]
        unsafe fn run<S: Simd>(self) {
            let DealSteps {
                data,
                steps,
                width,
                dst,
            } = self;
            let (groups, rest) = (steps.len / width, steps.len % width);
            let group_len = width * steps.steps;
            // SAFETY: `deal_steps` checked that every step's run lies in `data` and that
            // `dst` holds the packed groups (`packed_len`: whole groups of `width` lanes per
            // step); the CPU has S's path (contract).
            unsafe {
                for step in 0..steps.steps {
                    let src = data.add(steps.first + step * steps.stride);
                    let out = dst.add(step * width);
                    // The panel widths of the tiles (one to six vectors) with constant moves.
                    match (width % S::LANES, width / S::LANES) {
                        (0, 1) => copy_groups::<S, 1>(src, out, groups, group_len),
                        (0, 2) => copy_groups::<S, 2>(src, out, groups, group_len),
                        (0, 3) => copy_groups::<S, 3>(src, out, groups, group_len),
                        (0, 4) => copy_groups::<S, 4>(src, out, groups, group_len),
                        (0, 6) => copy_groups::<S, 6>(src, out, groups, group_len),
                        _ => {
                            for group in 0..groups {
                                let from = src.add(group * width);
                                let to = out.add(group * group_len);
                                std::ptr::copy_nonoverlapping(from, to, width);
                            }
                        }
                    }
                    if rest > 0 {
                        let (from, to) = (src.add(groups * width), out.add(groups * group_len));
                        for lane in 0..width {
                            *to.add(lane) = if lane < rest { *from.add(lane) } else { 0.0 };
                        }
                    }
                }
            }
        }
    }

    /// Copies `groups` runs of `V` vectors, one after another from `src`, to `group_len`
    /// apart from `dst`.
    ///
    /// # Safety
    /// The CPU has S's path; `src` holds `groups·V·LANES` values, `dst` the runs' places.
    #[inline(always)]
    unsafe fn copy_groups<S: Simd, const V: usize>(
        src: *const f32,
        dst: *mut f32,
        groups: usize,
        group_len: usize,
    ) {
        let width = V * S::LANES;
        for group in 0..groups {
            // SAFETY: the caller's contract, run `group` of both.
            unsafe {
                let (from, to) = (src.add(group * width), dst.add(group * group_len));
                for v in 0..V {
                    S::store(to.add(v * S::LANES), S::load(from.add(v * S::LANES)));
                }
            }
        }
    }
}

/// An operand packed once (at plan time) for one width and depth block size, handed out
/// without copying.
#[derive(Clone, Debug, Default)]
pub struct PackedPanels {
    data: Vec<f32>,
    outer: usize,
    depth: usize,
    width: usize,
    depth_block: usize,
}

impl PackedPanels {
    /// Packs all of `source` (`outer` × `depth`) for `width`, in depth blocks of
    /// `depth_block`: block `b` holds depths `b·depth_block ..` for every outer group.
    pub fn new(
        source: &dyn PanelSource,
        outer: usize,
        depth: usize,
        width: usize,
        depth_block: usize,
    ) -> Self {
        let mut data = vec![0.0; packed_len(outer, depth, width)];
        let mut offset = 0;
        for start in (0..depth).step_by(depth_block.max(1)) {
            let block = start..(start + depth_block).min(depth);
            let len = packed_len(outer, block.len(), width);
            source.pack(0..outer, block, width, &mut data[offset..offset + len]);
            offset += len;
        }
        PackedPanels {
            data,
            outer,
            depth,
            width,
            depth_block,
        }
    }

    /// Element `(outer, depth)` of the packed operand.
    fn element(&self, outer: usize, depth: usize) -> f32 {
        let block = depth / self.depth_block;
        let block_len = (self.depth - block * self.depth_block).min(self.depth_block);
        let block_start = packed_len(self.outer, self.depth_block, self.width) * block;
        let group_start = outer / self.width * self.width * block_len;
        let within = (depth % self.depth_block) * self.width + outer % self.width;
        self.data[block_start + group_start + within]
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f32>()
    }
}

impl PanelSource for PackedPanels {
    fn pack(&self, outer: Range<usize>, depth: Range<usize>, width: usize, dst: &mut [f32]) {
        if let Some(panel) = self.prepacked(outer.clone(), depth.clone(), width) {
            dst[..panel.len()].copy_from_slice(panel);
            return;
        }
        // Any other block: read element by element from the packed layout.
        let depth_len = depth.len();
        for (group, panel) in dst[..packed_len(outer.len(), depth_len, width)]
            .chunks_exact_mut(width * depth_len)
            .enumerate()
        {
            for (p, lanes) in depth.clone().zip(panel.chunks_exact_mut(width)) {
                for (lane, value) in lanes.iter_mut().enumerate() {
                    let o = outer.start + group * width + lane;
                    *value = if o < outer.end {
                        self.element(o, p)
                    } else {
                        0.0
                    };
                }
            }
        }
    }

    fn prepacked(&self, outer: Range<usize>, depth: Range<usize>, width: usize) -> Option<&[f32]> {
        let block = depth.start / self.depth_block.max(1);
        let aligned = width == self.width
            && outer.start.is_multiple_of(width)
            && outer.end <= self.outer
            && depth.start.is_multiple_of(self.depth_block)
            && depth.end == (depth.start + self.depth_block).min(self.depth);
        if !aligned {
            return None;
        }
        let block_start = packed_len(self.outer, self.depth_block, width) * block;
        let group_len = width * depth.len();
        let first = block_start + outer.start / width * group_len;
        let len = outer.len().div_ceil(width) * group_len;
        self.data.get(first..first + len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_panels_interleave_and_zero_pad() {
        // A 3x2 row-major matrix [[1, 2], [3, 4], [5, 6]] as outer = rows, width 2.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut dst = [f32::NAN; 8];
        StridedMatrix::new(&a, 2, 1).pack(0..3, 0..2, 2, &mut dst);
        assert_eq!(dst, [1.0, 3.0, 2.0, 4.0, 5.0, 0.0, 6.0, 0.0]);
        // The same matrix as B (outer = columns), width 4: one group.
        let mut dst = [f32::NAN; 12];
        StridedMatrix::new(&a, 1, 2).pack(0..2, 0..3, 4, &mut dst);
        assert_eq!(
            dst,
            [1.0, 2.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0, 5.0, 6.0, 0.0, 0.0]
        );
    }

    #[test]
    fn transposed_packing_matches_element_order() {
        // 19 rows of 37 depths: full groups of 8 use the transposes, the last group does not.
        let a: Vec<f32> = (0..19 * 40).map(|v| v as f32).collect();
        let source = StridedMatrix::new(&a, 40, 1);
        let mut dst = vec![f32::NAN; packed_len(19, 35, 8)];
        source.pack(0..19, 2..37, 8, &mut dst);
        for row in 0..24 {
            for p in 0..35 {
                let expected = if row < 19 { a[row * 40 + 2 + p] } else { 0.0 };
                assert_eq!(
                    dst[(row / 8) * 8 * 35 + p * 8 + row % 8],
                    expected,
                    "row {row} depth {p}"
                );
            }
        }
    }

    #[test]
    fn packed_panels_hand_out_the_same_blocks() {
        let a: Vec<f32> = (0..7 * 5).map(|v| v as f32).collect();
        let source = StridedMatrix::new(&a, 5, 1);
        let packed = PackedPanels::new(&source, 7, 5, 3, 2);
        for (depth, outer) in [(0..2, 0..7), (2..4, 3..6), (4..5, 0..6)] {
            let mut expected = vec![0.0; packed_len(outer.len(), depth.len(), 3)];
            source.pack(outer.clone(), depth.clone(), 3, &mut expected);
            assert_eq!(packed.prepacked(outer, depth, 3), Some(&expected[..]));
        }
        assert_eq!(packed.prepacked(1..4, 0..2, 3), None);
        for (outer, depth, width) in [(1..4, 0..5, 3), (0..7, 1..4, 4), (6..7, 3..5, 1)] {
            let len = packed_len(outer.len(), depth.len(), width);
            let (mut expected, mut got) = (vec![0.0; len], vec![f32::NAN; len]);
            source.pack(outer.clone(), depth.clone(), width, &mut expected);
            packed.pack(outer, depth, width, &mut got);
            assert_eq!(got, expected);
        }
    }
}
