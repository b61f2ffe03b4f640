//! PNG helpers shared by the examples: tiles of values laid out in a grid.

use std::path::Path;

/// How a tile's values become gray levels.
#[derive(Clone, Copy, Debug)]
pub enum Contrast {
    /// Each tile stretched from its own minimum (black) to its maximum (white).
    PerTile,
    /// Signed values: zero is mid-gray, the tile's largest magnitude black or white.
    Signed,
}

/// Writes `tiles` (each `height × width` values, row-major) side by side in a grid of
/// `columns`, each pixel enlarged `scale` times, 2-pixel dark gaps between tiles.
pub fn save_grid(
    path: &Path,
    tiles: &[&[f32]],
    [height, width]: [usize; 2],
    columns: usize,
    scale: usize,
    contrast: Contrast,
) -> Result<(), String> {
    const GAP: usize = 2;
    let rows = tiles.len().div_ceil(columns);
    let cell = |n: usize| n * scale + GAP;
    let (image_w, image_h) = (columns * cell(width) + GAP, rows * cell(height) + GAP);
    let mut image = image::GrayImage::from_pixel(image_w as u32, image_h as u32, image::Luma([32]));
    for (index, tile) in tiles.iter().enumerate() {
        let (lo, hi) = tile
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let level = |v: f32| -> u8 {
            let t = match contrast {
                Contrast::PerTile if hi > lo => (v - lo) / (hi - lo),
                Contrast::PerTile => 0.5,
                Contrast::Signed => {
                    let m = lo.abs().max(hi.abs()).max(f32::MIN_POSITIVE);
                    0.5 + 0.5 * v / m
                }
            };
            (t.clamp(0.0, 1.0) * 255.0).round() as u8
        };
        let (x0, y0) = (
            GAP + index % columns * cell(width),
            GAP + index / columns * cell(height),
        );
        for y in 0..height * scale {
            for x in 0..width * scale {
                let value = tile[(y / scale) * width + x / scale];
                image.put_pixel(
                    (x0 + x) as u32,
                    (y0 + y) as u32,
                    image::Luma([level(value)]),
                );
            }
        }
    }
    image
        .save(path)
        .map_err(|e| format!("writing {}: {e}", path.display()))
}
