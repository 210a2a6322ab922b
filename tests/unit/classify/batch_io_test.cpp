// Batch classification I/O: document checks (empty, binary, non-UTF-8), folders and JSONL stdin, labels
// files, manifests, CSV/JSONL results and reading a half-finished file back for --resume.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "classify/batch_inputs.h"
#include "classify/manifest.h"
#include "classify/progress.h"
#include "classify/results_file.h"

namespace hr {
namespace {

namespace fs = std::filesystem;

struct TempDir {
    fs::path p;
    TempDir() {
        p = fs::temp_directory_path() / fmt::format("hr_batch_io_{}_{}", ::testing::UnitTest::GetInstance()->random_seed(),
                                                    reinterpret_cast<uintptr_t>(this));
        fs::create_directories(p);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(p, ec);
    }
    std::string write(const std::string& name, const std::string& text) const {
        std::ofstream(p / name, std::ios::binary) << text;
        return (p / name).string();
    }
};

TEST(BatchInputs, DocumentChecksNameTheProblem) {
    TempDir d;
    auto err = [](const Result<std::string>& r) { return r.ok() ? std::string("<ok>") : r.error().message; };
    EXPECT_EQ(*read_document_file(d.write("ok.txt", "\xEF\xBB\xBFHello")), "Hello");  // BOM removed
    EXPECT_NE(err(read_document_file(d.write("empty.txt", ""))).find("empty.txt: the document is empty"), std::string::npos);
    EXPECT_NE(err(read_document_file(d.write("blank.txt", " \n\t"))).find("only white space"), std::string::npos);
    EXPECT_NE(err(read_document_file(d.write("bin.pdf", std::string("%PDF\0\x01", 6)))).find("bin.pdf: not a text document (a NUL byte at offset 4"),
              std::string::npos);
    EXPECT_NE(err(read_document_file(d.write("latin1.txt", "caf\xe9"))).find("latin1.txt: not UTF-8 text (an invalid byte 0xe9 at offset 3)"),
              std::string::npos);
    EXPECT_NE(err(read_document_file((d.p / "missing.txt").string())).find("missing.txt: cannot read the document (no such file)"),
              std::string::npos);
    EXPECT_NE(err(read_document_file(d.p.string())).find("is a folder"), std::string::npos);
}

TEST(BatchInputs, FolderIsSortedAndSkipsHiddenAndExcluded) {
    TempDir d;
    d.write("b.txt", "B");
    d.write("a.txt", "A");
    d.write(".hidden", "H");
    const std::string manifest = d.write("manifest.jsonl", "{}");
    fs::create_directories(d.p / "sub");
    std::istringstream in;
    auto s = DocumentSource::open({d.p.string()}, {manifest}, in);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(s->total(), 2);
    std::vector<std::string> got;
    while (true) {
        auto n = s->next();
        ASSERT_TRUE(n.ok()) << n.error().message;
        if (!*n) break;
        got.push_back(fs::path((*n)->id).filename().string() + "=" + (*n)->text);
    }
    EXPECT_EQ(got, (std::vector<std::string>{"a.txt=A", "b.txt=B"}));
}

TEST(BatchInputs, JsonlOnStdin) {
    std::istringstream in("{\"id\": \"x1\", \"text\": \"first\"}\n\n{\"id\": 7, \"text\": \"second\"}\r\n");
    auto s = DocumentSource::open({"-"}, {}, in);
    ASSERT_TRUE(s.ok());
    EXPECT_FALSE(s->total().has_value());
    auto a = s->next();
    ASSERT_TRUE(a.ok() && *a);
    EXPECT_EQ((*a)->id, "x1");
    EXPECT_EQ((*a)->text, "first");
    auto b = s->next();
    ASSERT_TRUE(b.ok() && *b) << (b.ok() ? "" : b.error().message);
    EXPECT_EQ((*b)->id, "7");
    auto c = s->next();
    ASSERT_TRUE(c.ok());
    EXPECT_FALSE(c->has_value());

    for (const auto& [text, want] : std::vector<std::pair<std::string, std::string>>{
             {"not json\n", "stdin line 1: expected a JSON object"},
             {"{\"text\": \"t\"}\n", "stdin line 1: expected \"id\""},
             {"{\"id\": \"a\"}\n", "stdin line 1: expected \"text\""},
             {"{\"id\": \"a\", \"text\": \"\"}\n", "stdin line 1 (id a): the document is empty"}}) {
        std::istringstream bad(text);
        auto sb = DocumentSource::open({"-"}, {}, bad);
        ASSERT_TRUE(sb.ok());
        auto r = sb->next();
        ASSERT_FALSE(r.ok()) << text;
        EXPECT_NE(r.error().message.find(want), std::string::npos) << r.error().message;
    }
}

TEST(BatchInputs, LabelsFileAndExamplesDir) {
    TempDir d;
    auto ls = read_labels_file(d.write("labels.txt", "# comment\ninvoice: a bill\n\nreceipt\nbank statement: a list: of things\n"));
    ASSERT_TRUE(ls.ok()) << ls.error().message;
    EXPECT_EQ(ls->labels, (std::vector<std::string>{"invoice", "receipt", "bank statement"}));
    EXPECT_EQ(ls->descriptions, (std::vector<std::string>{"a bill", "", "a list: of things"}));
    auto plain = read_labels_file(d.write("plain.txt", "a\nb\n"));
    ASSERT_TRUE(plain.ok());
    EXPECT_TRUE(plain->descriptions.empty());
    EXPECT_FALSE(read_labels_file(d.write("none.txt", "# nothing\n")).ok());
    EXPECT_EQ(parse_label_list("invoice, bank statement").labels, (std::vector<std::string>{"invoice", "bank statement"}));

    fs::create_directories(d.p / "ex");
    d.write("ex/one.txt", "  INVOICE 1  \n");
    d.write("ex/manifest.jsonl", "{\"file\": \"one.txt\", \"label\": \"invoice\"}\n");
    auto ex = read_examples_dir((d.p / "ex").string());
    ASSERT_TRUE(ex.ok()) << ex.error().message;
    ASSERT_EQ(ex->size(), 1u);
    EXPECT_EQ((*ex)[0].text, "INVOICE 1");
    EXPECT_EQ((*ex)[0].label, "invoice");
    d.write("ex/manifest.jsonl", "{\"file\": \"two.txt\", \"label\": \"invoice\"}\n");
    auto missing = read_examples_dir((d.p / "ex").string());
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message.find("two.txt"), std::string::npos);
}

TEST(BatchInputs, ManifestFindsByFileAndId) {
    TempDir d;
    const std::string doc = d.write("doc.txt", "text");
    const std::string mpath =
        d.write("m.jsonl", "{\"file\": \"doc.txt\", \"label\": \"invoice\", \"split\": \"heldout\"}\n{\"id\": \"j1\", \"label\": \"receipt\"}\n");
    auto m = Manifest::load(mpath);
    ASSERT_TRUE(m.ok()) << m.error().message;
    // The same file named another way is found.
    const auto* e = m->find({"x", (d.p / "." / "doc.txt").string(), ""});
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->label, "invoice");
    EXPECT_EQ(e->split, "heldout");
    ASSERT_NE(m->find({"j1", "", ""}), nullptr);
    EXPECT_EQ(m->find({"j2", "", ""}), nullptr);
    auto bad = Manifest::load(d.write("bad.jsonl", "{\"file\": \"a\"}\n"));
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("line 1"), std::string::npos);
    auto dup = Manifest::load(d.write("dup.jsonl", "{\"id\": \"a\", \"label\": \"x\"}\n{\"id\": \"a\", \"label\": \"y\"}\n"));
    ASSERT_FALSE(dup.ok());
}

ClassifyResult result(const std::string& label, double p_first) {
    ClassifyResult r;
    r.label = label;
    r.probabilities = {{"invoice", p_first}, {"bank, \"statement\"", 1.0 - p_first}};
    return r;
}

TEST(ResultsFile, CsvAndJsonlRoundTripAndResumeCutsAPartialLine) {
    TempDir d;
    const std::vector<std::string> labels = {"invoice", "bank, \"statement\""};
    for (ResultFormat f : {ResultFormat::csv, ResultFormat::jsonl}) {
        const std::string path = (d.p / (f == ResultFormat::csv ? "out.csv" : "out.jsonl")).string();
        {
            auto w = ResultWriter::open(path, f, labels, false);
            ASSERT_TRUE(w.ok()) << w.error().message;
            ASSERT_TRUE(w->write("a,1", result("invoice", 0.75)).ok());
            ASSERT_TRUE(w->write("b\"2", result("bank, \"statement\"", 0.25)).ok());
        }
        // A run killed mid-write: a last line without its end.
        std::ofstream(path, std::ios::app | std::ios::binary) << (f == ResultFormat::csv ? "c3,invo" : "{\"id\": \"c3\", \"la");
        auto prev = read_previous_results(path, f, labels);
        ASSERT_TRUE(prev.ok()) << prev.error().message;
        ASSERT_EQ(prev->size(), 2u);
        EXPECT_EQ(prev->at("a,1").label, "invoice");
        EXPECT_NEAR(prev->at("a,1").probability, 0.75, 1e-6);
        EXPECT_EQ(prev->at("b\"2").label, "bank, \"statement\"");
        EXPECT_NEAR(prev->at("b\"2").probability, 0.75, 1e-6);
        // Appending continues cleanly after the cut.
        {
            auto w = ResultWriter::open(path, f, labels, true);
            ASSERT_TRUE(w.ok());
            ASSERT_TRUE(w->write("c3", result("invoice", 0.6)).ok());
        }
        auto again = read_previous_results(path, f, labels);
        ASSERT_TRUE(again.ok()) << again.error().message;
        EXPECT_EQ(again->size(), 3u);
        // Other labels: refused.
        auto other = read_previous_results(path, f, {"x", "y"});
        EXPECT_FALSE(other.ok());
    }
    EXPECT_EQ(csv_header(labels), "id,label,probability,p(invoice),\"p(bank, \"\"statement\"\")\"");
    EXPECT_TRUE(result_format("", "x.csv").ok());
    EXPECT_FALSE(result_format("", "x.txt").ok());
    EXPECT_FALSE(result_format("xml", "x.csv").ok());
}

TEST(Progress, LinesCountRateAndEta) {
    EXPECT_EQ(Progress::format_eta(5.2), "5 s");
    EXPECT_EQ(Progress::format_eta(65), "1:05");
    EXPECT_EQ(Progress::format_eta(3725), "1:02:05");
    std::FILE* f = std::tmpfile();
    ASSERT_NE(f, nullptr);
    Progress p(f, false, 10, 0.0);
    p.skipped(2);
    p.done("doc1");
    const std::string l = p.line("doc1");
    EXPECT_NE(l.find("3/10 documents (2 resumed)"), std::string::npos) << l;
    EXPECT_NE(l.find("documents/s"), std::string::npos) << l;
    EXPECT_NE(l.find("ETA"), std::string::npos) << l;
    std::fclose(f);
}

}  // namespace
}  // namespace hr
