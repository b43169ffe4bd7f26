//! The classes of a conditional VAE: their names from a dataset (an image folder's first-level
//! subfolders, or an IDX folder's label numbers), a dataset's labels renumbered as a model's
//! classes (matched by name, so a test folder with other or fewer classes still lines up), and
//! the `--label` flag (class indices or names, comma-separated).

use crate::bail;
use crate::data::{Split, UNLABELLED};
use crate::error::Result;
use std::path::Path;

/// The name of label `label` in a dataset with class names `classes` (IDX: empty, the label is
/// its number).
fn name_of(label: u32, classes: &[String]) -> Option<String> {
    if classes.is_empty() {
        (label != UNLABELLED).then(|| label.to_string())
    } else {
        classes.get(label as usize).cloned()
    }
}

/// The classes a conditional model trained on these splits takes: an image folder's class
/// names, or for IDX labels the numbers 0 to the largest label. An image without a class (a
/// file directly in the folder) is an error naming `source`.
pub fn names(classes: &[String], splits: &[&Split], source: &Path) -> Result<Vec<String>> {
    let labels = || splits.iter().flat_map(|s| s.labels.iter().copied());
    if labels().any(|l| l == UNLABELLED) {
        bail!(
            "{}: --conditional needs a class for every image, and some images lie directly in the folder (classes are first-level subfolders)",
            source.display()
        );
    }
    if !classes.is_empty() {
        return Ok(classes.to_vec());
    }
    let Some(max) = labels().max() else {
        bail!("{}: no labelled images", source.display());
    };
    Ok((0..=max).map(|l| l.to_string()).collect())
}

/// `labels` (of a dataset whose class names are `classes`, empty for IDX) as indices into a
/// model's classes `model`, matched by name; an image of a class the model does not know is an
/// error naming `source`.
pub fn relabel(
    labels: &[u32],
    classes: &[String],
    model: &[String],
    source: &Path,
) -> Result<Vec<u32>> {
    labels
        .iter()
        .map(|&l| {
            let name = name_of(l, classes);
            match name
                .as_ref()
                .and_then(|n| model.iter().position(|m| m == n))
            {
                Some(i) => Ok(i as u32),
                None => bail!(
                    "{}: the model draws the classes {}; an image here is {}",
                    source.display(),
                    list(model),
                    name.map_or("in no class".to_string(), |n| format!("of class {n:?}"))
                ),
            }
        })
        .collect()
}

/// `--label`: class indices or names, comma-separated, as indices into `model`.
pub fn parse_labels(arg: &str, model: &[String]) -> Result<Vec<u32>> {
    arg.split(',')
        .map(|item| {
            let item = item.trim();
            if let Some(i) = model.iter().position(|m| m == item) {
                return Ok(i as u32);
            }
            match item.parse::<usize>() {
                Ok(i) if i < model.len() => Ok(i as u32),
                _ => bail!(
                    "--label {item:?}: not one of the model's classes {} (give a name or an index below {})",
                    list(model),
                    model.len()
                ),
            }
        })
        .collect()
}

/// The first few class names, for errors.
fn list(model: &[String]) -> String {
    let shown: Vec<&str> = model.iter().take(12).map(String::as_str).collect();
    let more = if model.len() > shown.len() {
        ", …"
    } else {
        ""
    };
    format!("{}{more}", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Images;

    fn split(labels: Vec<u32>) -> Split {
        Split {
            images: Images {
                count: labels.len(),
                channels: 1,
                rows: 1,
                cols: 1,
                pixels: vec![0; labels.len()],
            },
            labels,
        }
    }

    #[test]
    fn idx_labels_are_numbers_and_folders_are_names() {
        let p = Path::new("d");
        let (a, b) = (split(vec![3, 0]), split(vec![9]));
        assert_eq!(names(&[], &[&a, &b], p).unwrap().len(), 10);
        let folders = vec!["cat".to_string(), "dog".to_string()];
        assert_eq!(names(&folders, &[&a], p).unwrap(), folders);
        let err = names(&[], &[&split(vec![UNLABELLED])], p).unwrap_err();
        assert!(err.to_string().contains("needs a class for every image"));
    }

    #[test]
    fn relabel_matches_names_and_refuses_unknown_classes() {
        let p = Path::new("d");
        let model: Vec<String> = ["ant", "bee", "cat"].map(String::from).to_vec();
        let test: Vec<String> = ["bee", "cat"].map(String::from).to_vec();
        assert_eq!(relabel(&[1, 0], &test, &model, p).unwrap(), vec![2, 1]);
        let digits: Vec<String> = (0..10).map(|d| d.to_string()).collect();
        assert_eq!(relabel(&[7, 0], &[], &digits, p).unwrap(), vec![7, 0]);
        let err = relabel(&[0], &["eel".to_string()], &model, p).unwrap_err();
        assert!(err.to_string().contains("of class \"eel\""), "{err}");
        assert!(relabel(&[UNLABELLED], &test, &model, p).is_err());
    }

    #[test]
    fn labels_are_names_or_indices() {
        let model: Vec<String> = ["ant", "bee", "cat"].map(String::from).to_vec();
        assert_eq!(parse_labels("cat, 0,bee", &model).unwrap(), vec![2, 0, 1]);
        assert!(parse_labels("3", &model).is_err());
        assert!(
            parse_labels("dog", &model)
                .unwrap_err()
                .to_string()
                .contains("ant, bee, cat")
        );
    }
}
