//! Go's `text/tabwriter`, which buildx, BuildKit and the docker CLI print their tables
//! and `Label:\tvalue` blocks with: tab-terminated cells line up in columns, a column
//! being a block of consecutive lines that have a cell there, as wide as its widest
//! cell plus `padding` (at least `min_width`); the last cell of a line is not part of
//! a column and is never padded.

/// Aligns `text` as Go's tabwriter padding with spaces does when flushed
/// (`tabwriter.NewWriter(w, min_width, _, padding, ' ', 0)`; widths count characters).
pub fn align(text: &str, min_width: usize, padding: usize) -> String {
    aligned(text, min_width, padding, None)
}

/// Aligns `text` as Go's tabwriter padding with tabs does
/// (`tabwriter.NewWriter(w, min_width, tab_width, padding, '\t', 0)`): each column's
/// width rounded up to a tab stop, filled with tabs.
pub fn align_with_tabs(text: &str, min_width: usize, tab_width: usize, padding: usize) -> String {
    aligned(text, min_width, padding, Some(tab_width))
}

fn aligned(text: &str, min_width: usize, padding: usize, tab_width: Option<usize>) -> String {
    let mut lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    // A final newline ends the last line; it does not start another.
    if text.ends_with('\n') {
        lines.pop();
    }
    let mut writer = Writer {
        lines: &lines,
        widths: Vec::new(),
        min_width,
        padding,
        tab_width,
        out: String::new(),
    };
    writer.format(0, lines.len());
    if text.ends_with('\n') {
        writer.out.push('\n');
    }
    writer.out
}

struct Writer<'a> {
    lines: &'a [Vec<&'a str>],
    widths: Vec<usize>,
    min_width: usize,
    padding: usize,
    /// Pad with tabs to stops this far apart (`None`: with spaces).
    tab_width: Option<usize>,
    out: String,
}

impl Writer<'_> {
    fn format(&mut self, mut line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            // A column block starts here: the lines before it are written as they are.
            self.write_lines(line0, this);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 && column + 1 < self.lines[this].len() {
                width = width.max(self.lines[this][column].chars().count() + self.padding);
                this += 1;
            }
            self.widths.push(width);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1);
    }

    fn write_lines(&mut self, line0: usize, line1: usize) {
        for i in line0..line1 {
            for (j, cell) in self.lines[i].iter().enumerate() {
                self.out.push_str(cell);
                if let Some(&width) = self.widths.get(j) {
                    let pad = match self.tab_width {
                        None => width.saturating_sub(cell.chars().count()),
                        Some(tab) => {
                            let stop = width.div_ceil(tab) * tab;
                            stop.saturating_sub(cell.chars().count()).div_ceil(tab)
                        }
                    };
                    let fill = if self.tab_width.is_some() { '\t' } else { ' ' };
                    self.out.extend(std::iter::repeat_n(fill, pad));
                }
            }
            if i + 1 < self.lines.len() {
                self.out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::align;

    /// What `docker buildx ls` printed (minwidth 10, padding 3): empty cells padded,
    /// the last one not.
    #[test]
    fn a_table_as_the_docker_cli_writes_it() {
        let text = "NAME/NODE\tDRIVER/ENDPOINT\tSTATUS\tBUILDKIT\tPLATFORMS\n\
                    lsx\tremote\t\t\t\n \\_ lsx0\t \\_ unix:///tmp/ls-oracle/bk.sock\trunning\tv0.24.0\tlinux/amd64\n";
        assert_eq!(
            align(text, 10, 3),
            "NAME/NODE   DRIVER/ENDPOINT                     STATUS    BUILDKIT   PLATFORMS\n\
             lsx         remote                                                   \n \
             \\_ lsx0     \\_ unix:///tmp/ls-oracle/bk.sock   running   v0.24.0    linux/amd64\n"
        );
    }

    /// A line without a tab ends a column block; the next block has its own widths.
    #[test]
    fn blocks_end_at_a_line_without_cells() {
        assert_eq!(
            align(
                "Name:\tx\nDriver:\ty\n\nNodes:\nName:\tn\nStatus:\tok\n",
                0,
                1
            ),
            "Name:   x\nDriver: y\n\nNodes:\nName:   n\nStatus: ok\n"
        );
        assert_eq!(
            align("Labels:\n\ta:\t1\n\tlonger:\t2\n", 0, 1),
            "Labels:\n a:      1\n longer: 2\n"
        );
    }
}
