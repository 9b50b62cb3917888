//! A user's own images, as both shells receive them: files with their paths (a folder picked
//! in the tab, a folder walked by the CLI) or zips of them. The first folder of a path names
//! the image's class, as torchvision's `ImageFolder` does.

use std::io::{Cursor, Read};

use super::{DataError, Format, ImageSet, images_from_files};
use crate::limits;

fn is_image(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg"].iter().any(|e| lower.ends_with(e))
}

fn is_zip(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".zip")
}

/// Whether [`labelled_images`] reads a file of this name (a PNG, a JPEG or a zip of them):
/// the others need not be read at all.
pub fn is_image_or_zip(path: &str) -> bool {
    is_image(path) || is_zip(path)
}

/// The PNG / JPEG files inside a zip, with their paths (other entries are skipped). At most
/// [`limits::MAX_ZIP_MEMBERS`] entries, each at most [`limits::MAX_ZIP_MEMBER_BYTES`]
/// uncompressed and all of them at most [`limits::MAX_UPLOAD_BYTES`]; the sizes the zip
/// declares are checked first, and reading stops at the limit whatever they said.
pub fn unzip_images(name: &str, bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, DataError> {
    let mut budget = limits::MAX_UPLOAD_BYTES;
    let mut files = Vec::new();
    unzip_into(name, bytes, &mut budget, &mut files)?;
    Ok(files)
}

/// [`unzip_images`], appending to `files` and taking the uncompressed bytes from `budget`.
fn unzip_into(name: &str, bytes: &[u8], budget: &mut u64, files: &mut Vec<(String, Vec<u8>)>) -> Result<(), DataError> {
    let bad = |e: zip::result::ZipError| DataError::BadZip { name: name.to_string(), why: e.to_string() };
    let over = |e: limits::OverLimit| DataError::TooLarge(e.within(name));
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(bad)?;
    limits::at_most("zip: members", archive.len(), limits::MAX_ZIP_MEMBERS).map_err(over)?;
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(bad)?;
        let path = entry.name().map_err(bad)?.to_string();
        // Finder's resource forks sit beside every file of a zip made on macOS.
        if !entry.is_file() || !is_image(&path) || path.starts_with("__MACOSX/") {
            continue;
        }
        limits::at_most("zip: images", files.len() + 1, limits::MAX_UPLOAD_IMAGES).map_err(over)?;
        let cap = limits::MAX_ZIP_MEMBER_BYTES.min(*budget);
        let declared = entry.size();
        let what = |kind: &str| format!("zip: {path}: {kind} uncompressed bytes");
        limits::at_most(&what("declared"), declared, limits::MAX_ZIP_MEMBER_BYTES).map_err(over)?;
        limits::at_most("zip: declared uncompressed bytes of the images", declared, *budget).map_err(over)?;
        // The declared size is only a hint: read one byte past the cap to see whether it lied.
        let mut data = Vec::with_capacity(declared.min(1 << 20) as usize);
        entry.take(cap + 1).read_to_end(&mut data).map_err(|e| DataError::BadZip { name: name.to_string(), why: format!("{path}: {e}") })?;
        limits::at_most(&what("actual"), data.len() as u64, cap).map_err(over)?;
        *budget -= data.len() as u64;
        files.push((path, data));
    }
    Ok(())
}

/// An image file's path, bytes and class label.
pub type LabelledImage = (String, Vec<u8>, u8);

/// Images with their class labels: `files` are (path, bytes), zips are opened, files that are
/// neither images nor zips are skipped. The class of `cats/01.png` is `cats`; when no image
/// sits in a subfolder there are no classes (all labels 0, `classes` empty). Sorted by path, so
/// the result does not depend on the order the files arrived in.
pub fn labelled_images(files: Vec<(String, Vec<u8>)>) -> Result<(Vec<LabelledImage>, Vec<String>), DataError> {
    let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let mut images = Vec::new();
    let mut budget = limits::MAX_UPLOAD_BYTES;
    for (path, bytes) in files {
        if is_zip(&path) {
            unzip_into(&path, &bytes, &mut budget, &mut images)?;
        } else if is_image(&path) {
            limits::at_most("upload: images", images.len() + 1, limits::MAX_UPLOAD_IMAGES)?;
            let size = bytes.len() as u64;
            limits::at_most("upload: bytes of the images", size, budget)?;
            budget -= size;
            images.push((path, bytes));
        }
    }
    if images.is_empty() {
        let list = names.join(", ");
        return Err(DataError::NoImages { among: list });
    }
    images.sort_by(|a, b| a.0.cmp(&b.0));
    // A single top folder holding everything (a picked folder, a zipped folder) is not a class.
    let top = |p: &str| p.split('/').next().unwrap_or_default().to_string();
    let first = top(&images[0].0);
    let strip = images.iter().all(|(p, _)| p.contains('/') && top(p) == first);
    let class_of = |p: &str| -> String {
        let parts: Vec<&str> = p.split('/').skip(usize::from(strip)).collect();
        if parts.len() > 1 { parts[0].to_string() } else { String::new() }
    };
    let mut classes: Vec<String> = images.iter().map(|(p, _)| class_of(p)).collect();
    classes.sort();
    classes.dedup();
    limits::at_most("upload: class folders", classes.len(), limits::MAX_CLASSES)?;
    for class in &classes {
        limits::at_most(&format!("upload: length of the class name {class:?}"), class.len(), limits::MAX_NAME_BYTES)?;
    }
    let labelled = images
        .into_iter()
        .map(|(path, bytes)| {
            let label = classes.binary_search(&class_of(&path)).expect("listed class") as u8;
            (path, bytes, label)
        })
        .collect();
    let classes = if classes == [String::new()] { Vec::new() } else { classes };
    Ok((labelled, classes))
}

/// The user's images, decoded, with their class names, as one safetensors file (`pixels`
/// `[N, H, W, C]` and `labels` `[N]`, both u8; the class names in the metadata): how the tab
/// keeps them in browser storage beside the run.
pub fn upload_to_bytes(set: &ImageSet, classes: &[String]) -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let pixels = TensorView::new(Dtype::U8, vec![set.len(), set.height, set.width, set.channels], &set.pixels)
        .expect("an image set's pixels fill its shape");
    let labels = TensorView::new(Dtype::U8, vec![set.labels.len()], &set.labels).expect("one byte per label");
    let metadata = std::collections::HashMap::from([(
        "classes".to_string(),
        serde_json::to_string(classes).expect("strings serialise"),
    )]);
    safetensors::serialize([("pixels", pixels), ("labels", labels)], Some(metadata)).expect("valid tensors serialise")
}

/// Reads [`upload_to_bytes`] back.
pub fn upload_from_bytes(bytes: &[u8]) -> Result<(ImageSet, Vec<String>), DataError> {
    use safetensors::{Dtype, SafeTensors};
    let bad = |why: &str| DataError::Malformed { format: Format::StoredImages, why: why.to_string() };
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| bad(&e.to_string()))?;
    let file = SafeTensors::deserialize(bytes).map_err(|e| bad(&e.to_string()))?;
    let pixels = file.tensor("pixels").map_err(|_| bad("no pixels"))?;
    let labels = file.tensor("labels").map_err(|_| bad("no labels"))?;
    if pixels.dtype() != Dtype::U8 || labels.dtype() != Dtype::U8 {
        return Err(bad("pixels and labels are not bytes (U8)"));
    }
    let [_, height, width, channels] = pixels.shape()[..] else { return Err(bad("pixels are not [N, H, W, C]")) };
    let classes: Vec<String> = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get("classes"))
        .and_then(|c| serde_json::from_str(c).ok())
        .ok_or_else(|| bad("no class names"))?;
    limits::at_most("the stored images: classes", classes.len(), limits::MAX_CLASSES)?;
    let set = ImageSet::new(height, width, channels, pixels.data().to_vec(), labels.data().to_vec())?;
    // Every label names a class; without class folders there are no names and every label is 0
    // ([`labelled_images`]). A label beyond them would name no class on the page.
    if set.labels.len() != set.len() {
        return Err(bad("not one label per image"));
    }
    if let Some(&label) = set.labels.iter().find(|&&l| usize::from(l) >= classes.len().max(1)) {
        return Err(bad(&format!("label {label} names no class ({} class names)", classes.len())));
    }
    Ok((set, classes))
}

/// [`labelled_images`] decoded at `size`×`size`×`channels` (centre-cropped and resized).
pub fn images_from_upload(files: Vec<(String, Vec<u8>)>, size: usize, channels: usize) -> Result<(ImageSet, Vec<String>), DataError> {
    let (files, classes) = labelled_images(files)?;
    let set = images_from_files(files.iter().map(|(n, b, l)| (n.as_str(), b.as_slice(), *l)), size, channels)?;
    Ok((set, classes))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn png(value: u8) -> Vec<u8> {
        let mut bytes = Vec::new();
        image::GrayImage::from_pixel(6, 4, image::Luma([value]))
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .unwrap();
        bytes
    }

    fn zip_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in files {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn subfolders_are_classes_and_a_common_top_folder_is_not() {
        let files = vec![
            ("pets/dogs/b.png".to_string(), png(200)),
            ("pets/cats/a.png".to_string(), png(10)),
            ("pets/notes.txt".to_string(), b"not an image".to_vec()),
        ];
        let (set, classes) = images_from_upload(files, 4, 1).unwrap();
        assert_eq!(classes, ["cats", "dogs"]);
        assert_eq!(set.labels, [0, 1]);
        // 6×4 centre-cropped to 4×4: every pixel keeps its value.
        assert_eq!(set.image(0), [10; 16]);
        assert_eq!(set.image(1), [200; 16]);
    }

    #[test]
    fn zips_open_and_loose_images_have_no_class() {
        let zip = zip_of(&[("a.png", png(1)), ("__MACOSX/._a.png", vec![0, 1]), ("b.jpg.txt", vec![])]);
        let (set, classes) = images_from_upload(vec![("mine.zip".into(), zip), ("c.png".into(), png(3))], 4, 3).unwrap();
        assert!(classes.is_empty());
        assert_eq!(set.len(), 2);
        assert_eq!(set.channels, 3);
    }

    #[test]
    fn stored_uploads_read_back_whole() {
        let files = vec![("a/x.png".to_string(), png(7)), ("b/y.png".to_string(), png(9))];
        let (set, classes) = images_from_upload(files, 4, 3).unwrap();
        let (back, back_classes) = upload_from_bytes(&upload_to_bytes(&set, &classes)).unwrap();
        assert_eq!((back, back_classes), (set.clone(), classes.clone()));
        let err = upload_from_bytes(b"not stored images").unwrap_err();
        assert!(err.to_string().starts_with("the stored images:"), "{err}");
        // A label that names no class (found by the fuzz target's check of valid results).
        let mut stray = set.clone();
        stray.labels[1] = 2;
        let err = upload_from_bytes(&upload_to_bytes(&stray, &classes)).unwrap_err();
        assert!(err.to_string().contains("label 2 names no class (2 class names)"), "{err}");
        stray.labels = vec![0, 1];
        assert!(upload_from_bytes(&upload_to_bytes(&stray, &[])).is_err(), "without class names every label is 0");
    }

    #[test]
    fn no_images_and_broken_files_say_so() {
        let err = images_from_upload(vec![("notes.txt".into(), b"hi".to_vec())], 4, 1).unwrap_err();
        assert!(matches!(err, DataError::NoImages { .. }) && err.to_string().contains("no PNG or JPEG images"), "{err}");
        let err = images_from_upload(vec![("x.zip".into(), b"not a zip".to_vec())], 4, 1).unwrap_err();
        assert!(matches!(&err, DataError::BadZip { name, .. } if name == "x.zip"), "{err}");
        assert!(err.to_string().contains("x.zip is not a readable zip"), "{err}");
        let err = images_from_upload(vec![("bad.png".into(), b"not a png".to_vec())], 4, 1).unwrap_err();
        assert!(matches!(&err, DataError::BadImage { name, .. } if name == "bad.png"), "{err}");
        assert!(err.to_string().contains("bad.png is not a readable PNG or JPEG"), "{err}");
    }
}
