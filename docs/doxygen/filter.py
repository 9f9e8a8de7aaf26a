#!/usr/bin/env python3
"""Doxygen input filter: reads the headers' plain // comments as documentation.

The headers document the API in ordinary // comments; Doxygen reads only ///, //! and /** */. This
filter, run by Doxygen on each header (docs/doxygen/Doxyfile), rewrites on the fly, keeping every
line where it is (warnings keep their line numbers):
  - the comment that opens the file            -> repeated after the last line as the file's
                                                  documentation (\\file)
  - a comment line at namespace / class level  -> /// (documents what follows)
  - "decl;  // text" at that level              -> "decl;  ///< text" (documents decl)
  - "T a, b;" at that level                      -> a member group, so a comment documents both
  - "// ---- section ----" lines                -> left alone (they name groups, not entities)
  - backslashes and @ in comments               -> escaped (the comments hold no Doxygen commands)
Comments inside function bodies and parameter lists stay plain comments. Lines of a comment that
are indented by two or more extra spaces (code examples) become code blocks, shown verbatim.
"""
import re
import sys

SCOPE = re.compile(r"^\s*(template\s*<.*>\s*)?(namespace|class|struct|union|enum)\b")
SECTION = re.compile(r"^\s*// ----.*----\s*$")
LINE_COMMENT = re.compile(r"^(\s*)//(?!/)( ?)(.*)$")


def code_part(line):
    """The line without string / character literals and without its // comment; the comment."""
    out, i, n = [], 0, len(line)
    while i < n:
        c = line[i]
        if c in "\"'":
            j = i + 1
            while j < n and line[j] != c:
                j += 2 if line[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        elif line.startswith("//", i):
            return "".join(out), line[i:]
        else:
            out.append(c)
            i += 1
    return "".join(out), ""


def top_level_comma(code):
    depth = 0
    for c in code:
        if c in "<([{":
            depth += 1
        elif c in ">)]}":
            depth -= 1
        elif c == "," and depth == 0:
            return True
    return False


def main(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    scopes = []        # one entry per open brace: True for namespace/class/struct/enum bodies
    statement = ""     # code since the last ; { or }
    parens = 0
    at_top = True      # still in the comment that opens the file
    out = []
    header = []        # the opening comment, repeated after the last line as the file's docs
    header_code = False  # inside a code example of that comment
    for line in lines:
        in_scope = all(scopes) and parens == 0
        m = LINE_COMMENT.match(line)
        if m and not line.strip().startswith("///"):
            indent, space, text = m.groups()
            code_example = text.startswith("  ")
            if code_example:
                text = "  " + text  # 4 spaces past the prose's indentation: a code block
            else:
                text = text.replace("\\", "\\\\").replace("@", "\\@")  # no Doxygen commands
            if at_top:
                # Appended after the last line, so lines can be added: examples get fences.
                if code_example != header_code:
                    header.append("/// ```")
                    header_code = code_example
                header.append(f"///{space}{text[4:] if code_example else text}")
                out.append(line)
                continue
            if in_scope and not SECTION.match(line):
                out.append(f"{indent}///{space}{text}")
            else:
                out.append(line)
            continue
        if line.strip():
            at_top = False
        if line.lstrip().startswith("#"):
            out.append(line)
            continue
        code, comment = code_part(line)
        text = ""
        if comment.startswith("// ") and not comment.startswith("///") and in_scope:
            text = re.sub(r"^NOLINT(\([^)]*\))?:?\s*", "", comment[3:])
            text = text.replace("\\", "\\\\").replace("@", "\\@")
        if in_scope and code.rstrip().endswith(";") and "(" not in code and top_level_comma(code):
            # "int a, b;": Doxygen gives a comment to a alone (b for a trailing one); as a member
            # group (DISTRIBUTE_GROUP_DOC) both get it.
            indent = line[: len(line) - len(line.lstrip())]
            doc = f"/** {text} */ " if text else ""
            line = f"{indent}{doc}/**@{{*/ {line[:len(line) - len(comment)].strip()} /**@}}*/"
        elif text and code.rstrip().endswith((";", ",")):
            line = line[: len(line) - len(comment)] + "///< " + text
        for c in code:
            if c == "(":
                parens += 1
            elif c == ")":
                parens = max(parens - 1, 0)
            elif c == "{":
                scopes.append(bool(SCOPE.match(statement)))
                statement = ""
            elif c == "}":
                if scopes:
                    scopes.pop()
                statement = ""
            elif c == ";":
                statement = ""
            else:
                statement += c
        statement += " "
        out.append(line)
    if header:
        out += ["/// \\file"] + header + (["/// ```"] if header_code else [])
    if "fmt::formatter" in "\n".join(lines):
        # Doxygen warns about fmt::formatter<...> specialisations when it has not seen namespace
        # fmt; a declaration after the last line (namespace fmt is excluded from the output).
        out.append("namespace fmt { template <class T, class Char> struct formatter; }")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
