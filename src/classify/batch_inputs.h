// Inputs of batch classification (headroom classify): documents from files, folders (their regular,
// non-hidden files, sorted by name, not recursive) and JSONL on stdin ("-": one {"id", "text"} object a
// line); the labels file (one label a line, an optional description after ": "); and few-shot examples
// from a folder (its manifest.jsonl names each file and its label). Every document is read whole and
// checked before it is classified: an unreadable, empty, binary (a NUL byte) or non-UTF-8 document is an
// error naming it, never skipped and never given a label.
#pragma once

#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <vector>

#include "classify/classify.h"
#include "core/status.h"

namespace hr {

constexpr uint64_t kMaxDocumentBytes = 16u << 20;  // one document; memory stays bounded

struct BatchDocument {
    std::string id;    // the path as given (files, folder entries) or the JSONL "id"
    std::string path;  // the file it came from; empty for stdin
    std::string text;
};

// `text` must be non-empty, not only white space, free of NUL bytes and valid UTF-8 (a UTF-8 BOM is
// removed first). `what` names the document in the error.
Status check_document_text(std::string& text, const std::string& what);

// Reads and checks one document file.
Result<std::string> read_document_file(const std::string& path);

class DocumentSource {
public:
    // inputs: files, folders or "-" (stdin, at most once). Folder entries whose canonical path is in
    // `exclude` (the manifest, the output file...) are left out.
    static Result<DocumentSource> open(const std::vector<std::string>& inputs, const std::vector<std::string>& exclude,
                                       std::istream& stdin_stream);
    // Documents in all, when stdin is not an input.
    std::optional<int64_t> total() const { return has_stdin_ ? std::nullopt : std::optional<int64_t>(n_files_); }
    // The next document, or nullopt after the last one.
    Result<std::optional<BatchDocument>> next();

private:
    struct Item {
        std::string path;  // "-" for stdin
    };
    std::vector<Item> items_;
    size_t at_ = 0;
    bool has_stdin_ = false;
    int64_t n_files_ = 0;
    std::istream* in_ = nullptr;
    int64_t stdin_line_ = 0;
};

struct LabelSet {
    std::vector<std::string> labels;
    std::vector<std::string> descriptions;  // one per label ("" = none), or empty when none has one
};

// "a,b,c" -> labels without descriptions.
LabelSet parse_label_list(const std::string& comma_separated);

// One label a line, "label" or "label: description"; blank lines and lines starting with '#' are skipped.
Result<LabelSet> read_labels_file(const std::string& path);

// DIR/manifest.jsonl: {"file": name relative to DIR, "label": ...} a line; each file read and checked.
Result<std::vector<ClassifyExample>> read_examples_dir(const std::string& dir);

}  // namespace hr
