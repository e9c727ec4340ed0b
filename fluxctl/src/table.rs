//! Column-aligned text tables, as `kubectl` prints them.

/// The rows (the first one is the header) with each column padded to its widest cell plus three
/// spaces, each line indented by `indent`; the last column is not padded.
pub(crate) fn render<R: AsRef<[String]>>(rows: &[R], indent: &str) -> String {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.as_ref().get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
                + 3
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells = row.as_ref();
        out.push_str(indent);
        for (c, cell) in cells.iter().enumerate() {
            if c + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}", width = widths[c]));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pads_every_column_but_the_last() {
        let rows = [
            vec!["NAME".to_owned(), "V".to_owned(), "X".to_owned()],
            vec!["web".to_owned(), "12".to_owned(), "-".to_owned()],
        ];
        assert_eq!(super::render(&rows, ""), "NAME   V    X\nweb    12   -\n");
    }
}
