// The documentation (docs/en, docs/zh) against the code it documents, through
// scripts/check_docs.py: both languages hold the same pages with the same runnable blocks, every
// `slim` command and flag written in a shell block exists, the command reference is the binary's
// --help, relative links and anchors resolve, the API page shows the example that builds, and
// Doxygen has nothing to warn about in the public headers. The runnable blocks themselves run as
// CTest tests of their own, DocsRun.<page> (CMakeLists.txt).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "test_util.h"

namespace slim {
namespace {

namespace fs = std::filesystem;

/// scripts/check_docs.py with `args`, on the repository's pages or on those in `docs`.
test::CmdResult check_docs(const std::string& args, const std::string& docs = "") {
  return test::run_cmd((docs.empty() ? "" : "SLIM_DOCS=" + test::quote(docs) + " ") +
                       "SLIM=" + test::quote(test::slim_bin()) + " /usr/bin/python3 " +
                       test::quote(test::source_dir() + "/scripts/check_docs.py") + " " + args);
}

TEST(Docs, BothLanguagesHoldTheSamePagesWithTheSameRunnableBlocks) {
  auto r = check_docs("pages");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  r = check_docs("blocks");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  // The checks fail on a copy of the pages with a page only in English, and with a command
  // that differs between the languages.
  const std::string copy = test::temp_dir("docs_copy");
  fs::remove_all(copy);
  fs::copy(test::source_dir() + "/docs", copy, fs::copy_options::recursive);
  test::write_text(copy + "/en/zz-only-english.md", "# Test\n\n```sh run\necho one\n```\n");
  test::write_text(copy + "/en/zz-both.md", "# T\n\n```sh run\n# say one\necho one\n```\n");
  test::write_text(copy + "/zh/zz-both.md", "# T\n\n```sh run\n# 说\necho two\n```\n");
  r = check_docs("pages", copy);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("docs/zh/zz-only-english.md: missing (docs/en/zz-only-english.md exists)"),
            std::string::npos)
      << r.out;
  r = check_docs("blocks", copy);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("docs/en/zz-both.md:4 and docs/zh/zz-both.md:4: the runnable blocks "
                       "differ"),
            std::string::npos)
      << r.out;
  // Comments alone may differ.
  test::write_text(copy + "/zh/zz-both.md", "# T\n\n```sh run\n# 说\necho one\n```\n");
  r = check_docs("blocks", copy);
  EXPECT_EQ(r.code, 0) << r.out;
}

TEST(Docs, ARunnableBlockThatFailsFailsItsPageNamingTheBlock) {
  const std::string dir = test::temp_dir("docs_fail");
  test::write_text(dir + "/page.md",
                   "# T\n\n```sh run\nslim zoo lenet -o a.onnx\n```\n\ntext\n\n```sh run\n"
                   "ls a.onnx\nslim info missing.onnx\n```\n");
  auto r = check_docs("run " + test::quote(dir + "/page.md"));
  EXPECT_EQ(r.code, 1);
  // The second block (its first line is line 10) failed, after the first one's file was there for
  // it.
  EXPECT_NE(r.out.find("page.md:10: the block exited 1: slim: error:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("missing.onnx"), std::string::npos) << r.out;
}

TEST(Docs, EverySlimCommandAndFlagWrittenInTheDocsExists) {
  auto r = check_docs("flags");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

TEST(Docs, TheCommandReferenceIsTheBinarysHelp) {
  auto r = check_docs("cli");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  // Every command has its section.
  const std::string en = test::read_file(test::source_dir() + "/docs/en/cli.md");
  for (const char* c : {"## slim train", "## slim quant ptq", "## slim nas", "## slim launch",
                        "## slim compress", "## slim sensitivity merge"})
    EXPECT_NE(en.find(std::string(c) + "\n"), std::string::npos) << c;
  // The reference comes from `slim --help-all` (one process): it is what `--help` prints, the
  // program's name in the usage line aside.
  for (const std::string c : {"", "quant ptq", "sensitivity merge", "launch"}) {
    auto h = test::run_cmd(test::slim_bin() + " " + c + " --help");
    ASSERT_EQ(h.code, 0) << c;
    const std::string usage = "Usage: " + test::slim_bin();
    ASSERT_NE(h.out.find(usage), std::string::npos) << h.out;
    h.out.replace(h.out.find(usage), usage.size(), "Usage: slim");
    while (!h.out.empty() && h.out.back() == '\n') h.out.pop_back();  // the page ends it once
    h.out += '\n';
    EXPECT_NE(en.find("```text\n" + h.out), std::string::npos) << h.out;
  }
}

TEST(Docs, RelativeLinksAndAnchorsResolve) {
  auto r = check_docs("links");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

TEST(Docs, DoxygenHasNothingToWarnAboutInThePublicHeaders) {
  const std::string out = test::temp_dir("doxygen");
  const std::string log = out + "/warnings.txt";
  // The project's Doxyfile with the output moved into the build tree.
  auto r = test::run_cmd("cd " + test::quote(test::source_dir()) + " && ( cat docs/Doxyfile; " +
                         "echo 'OUTPUT_DIRECTORY = " + out + "'; echo 'WARN_LOGFILE = " + log +
                         "' ) | doxygen -");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(test::read_file(log), "");
  EXPECT_TRUE(fs::exists(out + "/html/index.html"));
  // The headers' /// comments made it into the pages.
  EXPECT_TRUE(fs::exists(out + "/html/namespaceslim.html"));
}

TEST(Docs, TheApiPagesShowTheExampleThatBuilds) {
  const std::string example =
      test::read_file(test::source_dir() + "/examples/prune_and_quantize.cc");
  ASSERT_FALSE(example.empty());
  for (const char* lang : {"en", "zh"}) {
    const std::string page = test::read_file(test::source_dir() + "/docs/" + lang + "/api.md");
    EXPECT_NE(page.find("```cpp\n" + example + "```\n"), std::string::npos) << lang;
  }
}

}  // namespace
}  // namespace slim
