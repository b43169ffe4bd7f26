//! The classes of a conditional VAE: their names from a dataset (an image folder's first-level
//! subfolders, or an IDX folder's label numbers), a dataset's labels renumbered as a model's
//! classes (matched by name, so a test folder with other or fewer classes still lines up), and
//! the `--label` flag (class indices or names, comma-separated, quoted as CSV fields), a class
//! name as a CSV field, and the names `import` gives a conditional model (`--classes`, or a
//! dataset's classes as `pytorch_images.py` numbers them).

use super::idx;
use super::listing::{list_images, split_rule};
use super::split::{DataOptions, Split, SplitRule, UNLABELLED};
use crate::bail;
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

/// `--label`: class indices or names, comma-separated, as indices into `model`. A class whose
/// name is the whole argument is that class (`--label a,b` names a class `a,b`); otherwise a
/// name holding a comma or a double quote is quoted as in a CSV field (`--label '"a,b",c'`,
/// `"q""x"` for `q"x`), as `encode` writes it.
pub fn parse_labels(arg: &str, model: &[String]) -> Result<Vec<u32>> {
    if let Some(i) = model.iter().position(|m| m == arg) {
        return Ok(vec![i as u32]);
    }
    csv_items("--label", arg)?
        .iter()
        .map(|item| {
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

/// The comma-separated items of `arg` (given to `flag`), each trimmed; an item in double
/// quotes (RFC 4180: `""` for a quote inside) may hold commas.
fn csv_items(flag: &str, arg: &str) -> Result<Vec<String>> {
    let mut items = Vec::new();
    let mut chars = arg.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut item = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') if chars.next_if_eq(&'"').is_some() => item.push('"'),
                    Some('"') => break,
                    Some(c) => item.push(c),
                    None => bail!("{flag} {arg:?}: a quoted class name has no closing \""),
                }
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.peek().is_some_and(|&c| c != ',') {
                bail!(
                    "{flag} {arg:?}: text after the closing \" of {item:?} (quote the whole name)"
                );
            }
        } else {
            while let Some(c) = chars.next_if(|&c| c != ',') {
                item.push(c);
            }
            item.truncate(item.trim_end().len());
        }
        items.push(item);
        if chars.next().is_none() {
            return Ok(items);
        }
    }
}

/// A model's class names as `--classes` gives them: comma-separated, in label order, quoted as
/// CSV fields where a name holds a comma or a quote; empty and repeated names are refused.
pub fn parse_names(arg: &str) -> Result<Vec<String>> {
    let names = csv_items("--classes", arg)?;
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            bail!("--classes {arg:?}: class {i} has no name");
        }
        if names[..i].contains(name) {
            bail!("--classes {arg:?}: {name:?} is named twice");
        }
    }
    Ok(names)
}

/// The classes of the dataset in `dir`, numbered as `pytorch_images.py` numbers them: an image
/// folder's first-level subfolders that hold images (below `train/` and `test/` when both are
/// there), in sorted order, read from its listing alone; an IDX folder's label numbers.
pub fn of_folder(dir: &Path) -> Result<Vec<String>> {
    if !dir.is_dir() {
        bail!("{}: no such dataset folder", dir.display());
    }
    if idx::is_idx_folder(dir) {
        let ds = idx::load(dir, &DataOptions::default())?;
        return names(&ds.classes, &[&ds.train, &ds.test], dir);
    }
    let listing = list_images(dir)?;
    let folders = split_rule(dir, 10) == SplitRule::Folders;
    let mut classes: Vec<String> = listing
        .images
        .iter()
        .filter_map(|rel| {
            let mut parts: Vec<&str> = rel.split('/').collect();
            if folders && !matches!(parts.first(), Some(&("train" | "test"))) {
                return None;
            }
            if folders {
                parts.remove(0);
            }
            (parts.len() > 1).then(|| parts[0].to_string())
        })
        .collect();
    classes.sort_unstable();
    classes.dedup();
    if classes.is_empty() {
        bail!(
            "{}: no classes (subfolders holding images) to name the model's classes by",
            dir.display()
        );
    }
    Ok(classes)
}

/// `text` as one CSV field (RFC 4180): as it is, or in double quotes (inner quotes doubled) when
/// it holds a comma, a double quote, a CR or a LF.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
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
    use crate::data::split::Images;

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
    fn labels_may_name_classes_that_hold_commas_and_quotes() {
        let model: Vec<String> = ["a,b", "q\"x", "c", " d "].map(String::from).to_vec();
        assert_eq!(parse_labels("a,b", &model).unwrap(), vec![0]);
        assert_eq!(
            parse_labels(r#""a,b", "q""x",c,2"#, &model).unwrap(),
            vec![0, 1, 2, 2]
        );
        assert_eq!(parse_labels(" d ", &model).unwrap(), vec![3]);
        assert_eq!(parse_labels(r#"" d ",c"#, &model).unwrap(), vec![3, 2]);
        for bad in [r#""a,b"#, r#""a"b,c"#, "-1"] {
            let err = parse_labels(bad, &model).unwrap_err().to_string();
            assert!(err.starts_with("--label"), "{err}");
        }
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(csv_field("cat"), "cat");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("q\"x"), "\"q\"\"x\"");
        assert_eq!(csv_field("two\nlines\r"), "\"two\nlines\r\"");
        for name in ["a,b", "q\"x", "plain"] {
            assert_eq!(csv_items("--label", &csv_field(name)).unwrap(), [name]);
        }
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
