//! A colour for every class id, for showing label maps (`spade colorize`, the label column of the
//! training sample grids).
//!
//! Ids of the procedural dataset's classes get colours that suggest the class (sky blue, grass
//! green, …). Every other id gets the PASCAL VOC colour map, whose colours come from spreading the
//! id's bits over the three channels, so any two ids below 256 differ.
use super::procedural::CLASS_COLOURS;

/// The display colour of class id `id`.
pub fn class_colour(id: u32) -> [u8; 3] {
    if let Some(c) = CLASS_COLOURS.get(id as usize) {
        return *c;
    }
    let mut rgb = [0u8; 3];
    let mut bits = id;
    for shift in (0..8).rev() {
        for (channel, c) in rgb.iter_mut().enumerate() {
            *c |= (((bits >> channel) & 1) as u8) << shift;
        }
        bits >>= 3;
    }
    rgb
}

/// Colours a row-major map of class ids into packed RGB bytes.
pub fn colorize(ids: &[u32]) -> Vec<u8> {
    ids.iter().flat_map(|&id| class_colour(id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voc_colours_follow_the_bit_spreading_rule() {
        // VOC's published colours for ids 13..16 (the first ids past the procedural classes).
        assert_eq!(class_colour(13), [192, 0, 128]);
        assert_eq!(class_colour(14), [64, 128, 128]);
        assert_eq!(class_colour(15), [192, 128, 128]);
        assert_eq!(class_colour(16), [0, 64, 0]);
    }

    #[test]
    fn ids_below_256_get_distinct_colours() {
        let mut seen = std::collections::HashSet::new();
        for id in 0..256 {
            assert!(seen.insert(class_colour(id)), "id {id} repeats a colour");
        }
    }
}
