# ruff: noqa: E501 - the fixtures hold OOXML as Word writes it
"""Word fidelity: every word the author wrote comes out once, and nothing else does, for what Word files
hold besides paragraphs: Strict Open XML packages, text boxes (DrawingML with a VML fallback), comments
with replies, pictures with alt text (EMF too), tables in table cells, first-page and even-page headers
and footers, checkboxes and equations. Each file is a real package written here part by part, as Word
writes it (python-docx cannot write these features)."""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from pathlib import Path

import pytest
import unitok
from unitok.pipeline.formats.docx import omml_latex

TRANSITIONAL = {
    "w": "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "m": "http://schemas.openxmlformats.org/officeDocument/2006/math",
    "wp": "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing",
    "a": "http://schemas.openxmlformats.org/drawingml/2006/main",
    "pic": "http://schemas.openxmlformats.org/drawingml/2006/picture",
}
STRICT = {
    "w": "http://purl.oclc.org/ooxml/wordprocessingml/main",
    "r": "http://purl.oclc.org/ooxml/officeDocument/relationships",
    "m": "http://purl.oclc.org/ooxml/officeDocument/math",
    "wp": "http://purl.oclc.org/ooxml/drawingml/wordprocessingDrawing",
    "a": "http://purl.oclc.org/ooxml/drawingml/main",
    "pic": "http://purl.oclc.org/ooxml/drawingml/picture",
}
OTHER = {
    "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006",
    "wps": "http://schemas.microsoft.com/office/word/2010/wordprocessingShape",
    "w14": "http://schemas.microsoft.com/office/word/2010/wordml",
    "w15": "http://schemas.microsoft.com/office/word/2012/wordml",
    "v": "urn:schemas-microsoft-com:vml",
    "o": "urn:schemas-microsoft-com:office:office",
}
REL_TYPES = {
    "Transitional": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "Strict": "http://purl.oclc.org/ooxml/officeDocument/relationships",
}
WML = "application/vnd.openxmlformats-officedocument.wordprocessingml"


def make_docx(path: Path, body: str, parts: dict[str, tuple[str, str, str]] | None = None,
              strict: bool = False, main: str = "word/document.xml", extra_rels: str = "") -> Path:  # fmt: skip
    """A Word package: `body` is the w:body content; `parts` maps a relationship id to (type, part name
    under the main part's folder, the part's XML, its root's namespaces declared by make_docx's `{NS}`).
    Strict packages use the ISO namespaces and relationship types throughout, as Word saves them."""
    names = {**(STRICT if strict else TRANSITIONAL), **OTHER}
    ns = " ".join(f'xmlns:{p}="{u}"' for p, u in names.items())
    rel = REL_TYPES["Strict" if strict else "Transitional"]
    folder, base = main.rsplit("/", 1)
    conformance = ' w:conformance="strict"' if strict else ""
    document = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document {ns} mc:Ignorable="w14 w15"{conformance}><w:body>{body}</w:body></w:document>'
    rels = "".join(
        f'<Relationship Id="{rid}" Type="{rel}/{kind}" Target="{target}"/>'
        for rid, (kind, target, _) in (parts or {}).items()
    )
    types = "".join(
        f'<Override PartName="/{folder}/{target}" ContentType="{WML}.{kind}+xml"/>'
        for kind, target, _ in (parts or {}).values()
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/><Default Extension="emf" ContentType="image/x-emf"/>'
            f'<Override PartName="/{main}" ContentType="{WML}.document.main+xml"/>{types}</Types>',
        )
        z.writestr(
            "_rels/.rels",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="{main}"/></Relationships>',
        )
        z.writestr(
            f"{folder}/_rels/{base}.rels",
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}{extra_rels}</Relationships>',
        )
        z.writestr(main, document)
        for _, target, xml in (parts or {}).values():
            z.writestr(f"{folder}/{target}", xml.replace("{NS}", ns))
    return path


def p(text: str, extra: str = "") -> str:
    return f'<w:p>{extra}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'


_MARKUP = re.compile(r"<!--.*?-->|^\s*(#{1,6}|[-*+]|\d+\.|>)\s+|\|\s*-{3,}\s*|\*\*|<br>", re.M)


def words(text: str) -> Counter[str]:
    """The words of a text, Markdown syntax and punctuation at their edges left out."""
    text = re.sub(r"\[\^\w+\]:?", " ", text)  # footnote marks
    text = re.sub(r"\[([^\]]*)\]\(([^)]*)\)", r"\1 \2", text)  # a link: its text and its address
    tokens = (t.strip(".,;:!?()[]*_`|") for t in _MARKUP.sub(" ", text).split())
    return Counter(t for t in tokens if t)


def assert_faithful(md: str, author: str, metadata: str = "") -> None:
    """Every word the author wrote is in md exactly as often, and md has no other word (bar metadata:
    comment authors and dates)."""
    meta = set(words(metadata))
    got, want = Counter({w: n for w, n in words(md).items() if w not in meta}), words(author)
    assert got == want, f"lost {dict(want - got)}, added {dict(got - want)}\n{md}"


def convert(path: Path) -> unitok.Document:
    doc = unitok.convert(path)
    assert doc.ok and not doc.errors, doc.errors
    return doc


# -- Strict Open XML ------------------------------------------------------------------------------------


def header_xml(kind: str, text: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:{kind} {{NS}}>{p(text)}</w:{kind}>'


def comments_xml(*comments: tuple[int, str, str, str]) -> str:
    """w:comment elements: (id, author, text, the w14:paraId of its paragraph)."""
    body = "".join(
        f'<w:comment w:id="{i}" w:author="{who}" w:date="2024-05-02T10:00:00Z" w:initials="X">'
        f'<w:p w14:paraId="{pid}"><w:r><w:annotationRef/></w:r><w:r><w:t>{text}</w:t></w:r></w:p></w:comment>'
        for i, who, text, pid in comments
    )
    return f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:comments {{NS}}>{body}</w:comments>'


@pytest.mark.parametrize("main", ["word/document.xml", "word/document2.xml"])
def test_a_strict_package_is_read_whole_through_its_relationships(tmp_path: Path, main: str) -> None:
    body = (
        '<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Strict report</w:t></w:r></w:p>'
        '<w:p><w:r><w:t xml:space="preserve">Valves were </w:t></w:r><w:hyperlink r:id="rIdLink"><w:r><w:t>checked</w:t></w:r></w:hyperlink>'
        '<w:r><w:t xml:space="preserve"> twice</w:t></w:r><w:r><w:footnoteReference w:id="1"/></w:r>'
        '<w:commentRangeStart w:id="0"/><w:r><w:t xml:space="preserve"> yearly.</w:t></w:r><w:commentRangeEnd w:id="0"/>'
        '<w:r><w:commentReference w:id="0"/></w:r></w:p>'
        "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Plant</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Valves</w:t></w:r></w:p></w:tc></w:tr>"
        "<w:tr><w:tc><w:p><w:r><w:t>Ebro</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>31</w:t></w:r></w:p></w:tc></w:tr></w:tbl>"
        '<w:p><w:r><w:drawing><wp:inline><wp:extent cx="952500" cy="952500"/><wp:docPr id="1" name="Picture 1" descr="Valve cross section"/>'
        '<a:graphic><a:graphicData uri="http://purl.oclc.org/ooxml/drawingml/picture"><pic:pic><pic:nvPicPr><pic:cNvPr id="1" name="valve.emf"/><pic:cNvPicPr/></pic:nvPicPr>'
        '<pic:blipFill><a:blip r:embed="rIdImg"/></pic:blipFill></pic:pic></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>'
        '<w:sectPr><w:headerReference w:type="default" r:id="rIdH1"/><w:footerReference w:type="default" r:id="rIdF1"/>'
        '<w:pgSz w:w="612pt" w:h="792pt"/><w:pgMar w:top="72pt" w:right="72pt" w:bottom="72pt" w:left="72pt" w:header="36pt" w:footer="36pt" w:gutter="0pt"/></w:sectPr>'
    )
    styles = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:styles {NS}><w:style w:type="paragraph" w:styleId="Heading1">'
        '<w:name w:val="heading 1"/><w:pPr><w:outlineLvl w:val="0"/></w:pPr></w:style></w:styles>'
    )
    footnotes = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:footnotes {NS}><w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
        '<w:footnote w:id="1"><w:p><w:r><w:footnoteRef/></w:r><w:r><w:t xml:space="preserve"> Per the Ebro manual.</w:t></w:r></w:p></w:footnote></w:footnotes>'
    )
    parts = {
        "rIdS": ("styles", "styles.xml", styles),
        "rIdH1": ("header", "header1.xml", header_xml("hdr", "Basin authority")),
        "rIdF1": ("footer", "footer1.xml", header_xml("ftr", "Page footer words")),
        "rIdFn": ("footnotes", "footnotes.xml", footnotes),
        "rIdC": ("comments", "comments.xml", comments_xml((0, "Ana Ruiz", "Which year?", "0A1B2C3D"))),
    }
    link = f'<Relationship Id="rIdLink" Type="{REL_TYPES["Strict"]}/hyperlink" Target="https://example.org/valves" TargetMode="External"/>'
    link += f'<Relationship Id="rIdImg" Type="{REL_TYPES["Strict"]}/image" Target="media/image1.emf"/>'
    path = make_docx(tmp_path / "strict.docx", body, parts, strict=True, main=main, extra_rels=link)
    with zipfile.ZipFile(path) as z:  # Strict as Word writes it: no Transitional namespace or type left
        assert all(b"schemas.openxmlformats.org/wordprocessingml" not in z.read(n) for n in z.namelist())
        assert b"purl.oclc.org/ooxml/officeDocument/relationships/officeDocument" in z.read("_rels/.rels")
    doc = convert(path)
    md = doc.markdown
    assert md.startswith("<!-- header -->\n\nBasin authority\n\n# Strict report\n\n")
    assert "Valves were [checked](https://example.org/valves) twice[^1] yearly." in md
    assert "| Ebro | 31 |" in md and "<!-- image --> *Valve cross section*" in md
    assert "<!-- footer -->\n\nPage footer words" in md and "[^1]: Per the Ebro manual." in md
    assert "- Ana Ruiz, 2024-05-02: Which year?" in md
    assert_faithful(
        md,
        "Basin authority Strict report Valves were checked https://example.org/valves twice yearly "
        "Plant Valves Ebro 31 Valve cross section Page footer words Per the Ebro manual "
        "Which year?",
        metadata="Ana Ruiz 2024-05-02",
    )


def _styles_part(layout: str) -> str:
    """A styles part with a localized heading style, one based on it, a list style and a table style,
    written with the `w` prefix, in a default namespace, or with a comment that holds a style's end tag."""
    styles = [
        '<w:style w:type="table" w:styleId="Grid"><w:name w:val="Table Grid"/></w:style>',
        '<w:style w:type="paragraph" w:default="1" w:styleId="Standard"><w:name w:val="Normal"/></w:style>',
        '<w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/><w:basedOn w:val="Standard"/></w:style>',
        '<w:style w:type="paragraph" w:customStyle="1" w:styleId="Kapitel"><w:name w:val="Kapitel"/><w:basedOn w:val="berschrift1"/></w:style>',
        '<w:style w:type="paragraph" w:styleId="Liste"><w:name w:val="List Number"/><w:pPr><w:numPr><w:ilvl w:val="1"/><w:numId w:val="7"/></w:numPr></w:pPr></w:style>',
        '<w:style w:type="character" w:styleId="Leer"/>',
    ]
    if layout == "comment":
        styles[2] = styles[2].replace("<w:name", "<!-- ends at </w:style> --><w:name")
    xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:styles {NS}>'
        + "".join(styles)
        + "</w:styles>"
    )
    if layout == "default-namespace":
        xml = (
            xml.replace("<w:", "<")
            .replace("</w:", "</")
            .replace("{NS}", f'xmlns="{TRANSITIONAL["w"]}" {{NS}}')
        )
        # A default namespace covers elements only: the attributes keep their prefix.
    return xml


@pytest.mark.parametrize("layout", ["prefixed", "default-namespace", "comment"])
def test_styles_are_read_alike_however_the_part_is_written(tmp_path: Path, layout: str) -> None:
    body = (
        p("Anlage", '<w:pPr><w:pStyle w:val="berschrift1"/></w:pPr>')
        + p("Ventile", '<w:pPr><w:pStyle w:val="Kapitel"/></w:pPr>')
        + p("Erster Punkt", '<w:pPr><w:pStyle w:val="Liste"/></w:pPr>')
        + p("Fliesstext", '<w:pPr><w:pStyle w:val="Standard"/></w:pPr>')
    )
    numbering = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:numbering {NS}><w:abstractNum w:abstractNumId="3">'
        '<w:lvl w:ilvl="1"><w:numFmt w:val="decimal"/></w:lvl></w:abstractNum><w:num w:numId="7"><w:abstractNumId w:val="3"/></w:num></w:numbering>'
    )
    parts = {"rIdS": ("styles", "styles.xml", _styles_part(layout)),
             "rIdN": ("numbering", "numbering.xml", numbering)}  # fmt: skip
    md = convert(make_docx(tmp_path / f"{layout}.docx", body, parts)).markdown
    assert md == "# Anlage\n\n# Ventile\n\n  1. Erster Punkt\n\nFliesstext", md


# -- text boxes -----------------------------------------------------------------------------------------


def textbox(choice_text: str, fallback_text: str) -> str:
    """A run holding a DrawingML text box with its VML fallback, as Word 2010 and later write it."""
    return (
        '<w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wp:anchor distT="0" distB="0" distL="0" distR="0" simplePos="0" relativeHeight="1" behindDoc="0" locked="0" layoutInCell="1" allowOverlap="1">'
        '<wp:simplePos x="0" y="0"/><wp:extent cx="1828800" cy="457200"/><wp:docPr id="2" name="Text Box 2"/>'
        '<a:graphic><a:graphicData uri="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"><wps:wsp><wps:cNvSpPr txBox="1"/>'
        f"<wps:txbx><w:txbxContent>{choice_text}</w:txbxContent></wps:txbx><wps:bodyPr/></wps:wsp></a:graphicData></a:graphic></wp:anchor></w:drawing></mc:Choice>"
        '<mc:Fallback><w:pict><v:shape id="Text Box 2" type="#_x0000_t202" style="width:144pt;height:36pt">'
        f"<v:textbox><w:txbxContent>{fallback_text}</w:txbxContent></v:textbox></v:shape></w:pict></mc:Fallback></mc:AlternateContent></w:r>"
    )


def test_text_boxes_are_read_once_wherever_they_are(tmp_path: Path) -> None:
    box = p("Boil water before drinking.") + p("Call the depot.")
    nested = p("Outer box words") + f"<w:p>{textbox(p('Inner box words'), p('Inner box words'))}</w:p>"
    body = (
        p("Notice board")
        + f'<w:p><w:r><w:t xml:space="preserve">See the box </w:t></w:r>{textbox(box, box)}<w:r><w:t>here.</w:t></w:r></w:p>'
        + f"<w:p>{textbox(nested, nested)}</w:p>"
        # a text box in a table cell, and one written only as VML (older Word)
        + f"<w:tbl><w:tr><w:tc>{p('Cell words')}<w:p>{textbox(p('Cell box words'), p('Cell box words'))}</w:p></w:tc></w:tr></w:tbl>"
        + '<w:p><w:r><w:pict><v:shape id="old" type="#_x0000_t202"><v:textbox><w:txbxContent>'
        + p("Legacy VML box")
        + "</w:txbxContent></v:textbox></v:shape></w:pict></w:r></w:p>"
        # a fallback only (no Choice Word could read): still read, once
        + f"<w:p><w:r><mc:AlternateContent><mc:Fallback><w:pict><v:shape><v:textbox><w:txbxContent>{p('Fallback only words')}</w:txbxContent></v:textbox></v:shape></w:pict></mc:Fallback></mc:AlternateContent></w:r></w:p>"
        # WordArt: its text is an attribute of the shape's text path
        + '<w:p><w:r><w:pict><v:shape><v:textpath style="font-family:Calibri" string="DRAFT COPY"/></v:shape></w:pict></w:r></w:p>'
    )
    md = convert(make_docx(tmp_path / "boxes.docx", body)).markdown
    assert "See the box here.\n\n<!-- text box -->\n\nBoil water before drinking.\n\nCall the depot." in md
    assert_faithful(
        md,
        "Notice board See the box here. Boil water before drinking. Call the depot. Outer box words "
        "Inner box words Cell words Cell box words Legacy VML box Fallback only words DRAFT COPY",
    )


# -- comments -------------------------------------------------------------------------------------------


def test_comments_and_their_replies_come_out_once_in_threads(tmp_path: Path) -> None:
    body = (
        p("Budget draft for the basin.")
        + '<w:p><w:commentRangeStart w:id="1"/><w:r><w:t>Pump costs rose.</w:t></w:r><w:commentRangeEnd w:id="1"/><w:r><w:commentReference w:id="1"/></w:r>'
        + '<w:r><w:commentReference w:id="2"/></w:r><w:r><w:commentReference w:id="3"/></w:r></w:p>'
    )
    comments = comments_xml(
        (1, "Ana Ruiz", "Source for this figure?", "11111111"),
        (2, "Ben Ode", "The March invoice.", "22222222"),
        (3, "Ana Ruiz", "Thanks, resolved.", "33333333"),
        (4, "Cy Lam", "Separate remark on layout.", "44444444"),
    )
    extended = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w15:commentsEx {NS}>'
        '<w15:commentEx w15:paraId="11111111" w15:done="1"/>'
        '<w15:commentEx w15:paraId="22222222" w15:paraIdParent="11111111" w15:done="0"/>'
        '<w15:commentEx w15:paraId="33333333" w15:paraIdParent="22222222" w15:done="0"/>'
        '<w15:commentEx w15:paraId="44444444" w15:done="0"/></w15:commentsEx>'
    )
    parts = {  # the comments part under a name of its own: found through the relationship
        "rIdC": ("comments", "notes/remarks.xml", comments),
        "rIdX": ("commentsExtended", "commentsExtended.xml", extended),
    }
    path = make_docx(tmp_path / "comments.docx", body, parts)
    with zipfile.ZipFile(path, "a") as z:  # commentsExtended's type is Microsoft's, not the ISO one
        rels = z.read("word/_rels/document.xml.rels").decode()
    md = convert(path).markdown
    assert "commentsExtended" in rels
    assert md.endswith(
        "<!-- comments -->\n\n- Ana Ruiz, 2024-05-02: Source for this figure?\n"
        "  - Ben Ode, 2024-05-02: The March invoice.\n  - Ana Ruiz, 2024-05-02: Thanks, resolved.\n"
        "- Cy Lam, 2024-05-02: Separate remark on layout."
    ), md
    assert_faithful(
        md,
        "Budget draft for the basin. Pump costs rose. Source for this figure? The March invoice. "
        "Thanks, resolved. Separate remark on layout.",
        metadata="Ana Ruiz Ben Ode Cy Lam 2024-05-02",
    )


# -- pictures -------------------------------------------------------------------------------------------


def test_pictures_keep_their_alt_text_emf_and_vml_alike(tmp_path: Path) -> None:
    drawing = (
        '<w:p><w:r><w:drawing><wp:inline><wp:extent cx="952500" cy="952500"/>'
        '<wp:docPr id="3" name="Picture 3" title="Flow chart" descr="Water flows from the basin to the plant"/>'
        '<a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/picture"><pic:pic><pic:nvPicPr><pic:cNvPr id="3" name="image1.emf"/><pic:cNvPicPr/></pic:nvPicPr>'
        '<pic:blipFill><a:blip r:embed="rIdEmf"/></pic:blipFill></pic:pic></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>'
    )
    vml = (
        '<w:p><w:r><w:pict><v:shape id="_x0000_i1025" type="#_x0000_t75" alt="Site map of the depot" style="width:100pt;height:50pt">'
        '<v:imagedata r:id="rIdEmf2" o:title="map"/></v:shape></w:pict></w:r></w:p>'
    )
    ole = (  # an embedded object: its preview is an EMF, its alt text on the VML shape
        '<w:p><w:r><w:object><v:shape id="_x0000_i1026" type="#_x0000_t75" alt="Budget sheet">'
        '<v:imagedata r:id="rIdEmf2" o:title=""/></v:shape><o:OLEObject Type="Embed" ProgID="Excel.Sheet.12" ShapeID="_x0000_i1026" r:id="rIdOle"/></w:object></w:r></w:p>'
    )
    no_alt = (
        '<w:p><w:r><w:drawing><wp:inline><wp:docPr id="4" name="Picture 4"/><a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/picture">'
        '<pic:pic><pic:blipFill><a:blip r:embed="rIdEmf"/></pic:blipFill></pic:pic></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>'
    )
    # Word's own alt text carries a line of its own words: the description is kept, that line is not
    generated = no_alt.replace(
        'name="Picture 4"',
        'name="Picture 5" descr="A pump on a plinth&#10;&#10;Description automatically generated"',
    )
    arrow = (  # a connector: no picture, no text, nothing to mark
        '<w:p><w:r><w:drawing><wp:anchor><wp:docPr id="6" name="Straight Arrow Connector 6"/><a:graphic><a:graphicData uri="http://schemas.microsoft.com/office/word/2010/wordprocessingShape">'
        '<wps:wsp><wps:cNvCnPr/><wps:spPr><a:prstGeom prst="straightConnector1"/></wps:spPr><wps:bodyPr/></wps:wsp></a:graphicData></a:graphic></wp:anchor></w:drawing></w:r>'
        "<w:r><w:t>After the arrow.</w:t></w:r></w:p>"
    )
    rel = REL_TYPES["Transitional"]
    extra = (
        f'<Relationship Id="rIdEmf" Type="{rel}/image" Target="media/image1.emf"/>'
        f'<Relationship Id="rIdEmf2" Type="{rel}/image" Target="media/image2.emf"/>'
    )
    body = p("Figures.") + drawing + vml + ole + no_alt + generated + arrow
    md = convert(make_docx(tmp_path / "pictures.docx", body, extra_rels=extra)).markdown
    assert "<!-- image --> *Flow chart: Water flows from the basin to the plant*" in md
    assert "<!-- image --> *Site map of the depot: map*" in md and "<!-- image --> *Budget sheet*" in md
    assert md.count("<!-- image -->") == 5 and "Picture 4" not in md and "image1.emf" not in md
    assert md.endswith("<!-- image -->\n\n<!-- image --> *A pump on a plinth*\n\nAfter the arrow."), md
    assert_faithful(
        md,
        "Figures. Flow chart Water flows from the basin to the plant Site map of the depot map Budget sheet "
        "A pump on a plinth After the arrow.",
    )


# -- tables ---------------------------------------------------------------------------------------------


def tc(content: str, props: str = "") -> str:
    return f"<w:tc>{f'<w:tcPr>{props}</w:tcPr>' if props else ''}{content}</w:tc>"


def test_tables_in_cells_and_rows_in_content_controls_lose_no_word(tmp_path: Path) -> None:
    inner = (
        "<w:tbl>"
        f"<w:tr>{tc(p('Inner head A'))}{tc(p('Inner head B'))}</w:tr>"
        f"<w:tr>{tc(p('alpha one'))}{tc(p('beta two'))}</w:tr>"
        f"<w:tr>{tc(p('deepest') + '<w:tbl><w:tr>' + tc(p('third level')) + '</w:tr></w:tbl>')}{tc(p('gamma'))}</w:tr>"
        "</w:tbl>"
    )
    body = (
        "<w:tbl>"
        f"<w:tr>{tc(p('Region'))}{tc(p('Details'))}</w:tr>"
        f"<w:tr>{tc(p('North'))}{tc(p('Before the table') + inner + p('After the table'))}</w:tr>"
        # a row inside a repeating-section content control, and a cell inside a plain one
        f'<w:sdt><w:sdtPr><w:alias w:val="Rows"/></w:sdtPr><w:sdtContent><w:tr>{tc(p("South"))}'
        f"<w:sdt><w:sdtPr/><w:sdtContent>{tc('<w:sdt><w:sdtPr/><w:sdtContent>' + p('Controlled cell text') + '</w:sdtContent></w:sdt>')}</w:sdtContent></w:sdt></w:tr></w:sdtContent></w:sdt>"
        # a row that starts one grid column in
        f'<w:tr><w:trPr><w:gridBefore w:val="1"/></w:trPr>{tc(p("Indented row"))}</w:tr>'
        # a hostile span: bounded, not a million cells
        + "<w:tr>"
        + tc(p("Wide"), '<w:gridSpan w:val="1000000"/>')
        + "</w:tr>"
        "</w:tbl>"
    )
    md = convert(make_docx(tmp_path / "nested.docx", body)).markdown
    assert (
        "| North | Before the table<br>Inner head A; Inner head B<br>alpha one; beta two<br>deepest<br>third level; gamma<br>After the table |"
        in md
    )
    assert "| South | Controlled cell text |" in md and "|  | Indented row |" in md
    assert len(md) < 2000
    table_words = "Region Details North Before the table Inner head A Inner head B alpha one beta two deepest third level gamma After the table South Controlled cell text Indented row"
    assert_faithful(md.replace("Wide", "", -1), table_words)


# -- headers and footers --------------------------------------------------------------------------------


def test_first_page_and_even_page_headers_and_footers_are_each_read_once(tmp_path: Path) -> None:
    body = (
        p("Body words.")
        + '<w:p><w:pPr><w:sectPr><w:headerReference w:type="default" r:id="rIdH2"/><w:headerReference w:type="first" r:id="rIdH1"/>'
        '<w:footerReference w:type="first" r:id="rIdF1"/><w:footerReference w:type="default" r:id="rIdF2"/><w:titlePg/></w:sectPr></w:pPr></w:p>'
        + p("Second section words.")
        + '<w:sectPr><w:headerReference w:type="even" r:id="rIdH3"/><w:headerReference w:type="default" r:id="rIdH2"/>'
        '<w:footerReference w:type="default" r:id="rIdF2"/></w:sectPr>'
    )
    parts = {
        "rIdH1": ("header", "header1.xml", header_xml("hdr", "Cover page banner")),
        "rIdH2": ("header", "header2.xml", header_xml("hdr", "Running head")),
        "rIdH3": ("header", "header3.xml", header_xml("hdr", "Even page head")),
        "rIdF1": ("footer", "footer1.xml", header_xml("ftr", "Cover footer")),
        "rIdF2": ("footer", "footer2.xml", header_xml("ftr", "Page footer")),
    }
    md = convert(make_docx(tmp_path / "pages.docx", body, parts)).markdown
    assert md.startswith(
        "<!-- header: first page -->\n\nCover page banner\n\n<!-- header -->\n\nRunning head\n\n"
        "<!-- header: even pages -->\n\nEven page head\n\nBody words."
    ), md
    assert md.endswith("<!-- footer: first page -->\n\nCover footer\n\n<!-- footer -->\n\nPage footer"), md
    assert_faithful(
        md,
        "Cover page banner Running head Even page head Body words. Second section words. Cover footer Page footer",
    )


# -- checkboxes -----------------------------------------------------------------------------------------


def checkbox(checked: bool, glyph: str) -> str:
    state = "1" if checked else "0"
    return (
        f'<w:sdt><w:sdtPr><w:id w:val="1"/><w14:checkbox><w14:checked w14:val="{state}"/>'
        '<w14:checkedState w14:val="2612" w14:font="MS Gothic"/><w14:uncheckedState w14:val="2610" w14:font="MS Gothic"/></w14:checkbox></w:sdtPr>'
        f'<w:sdtContent><w:r><w:rPr><w:rFonts w:ascii="MS Gothic" w:hAnsi="MS Gothic"/></w:rPr><w:t>{glyph}</w:t></w:r></w:sdtContent></w:sdt>'
    )


def test_checkboxes_show_their_state_once_with_their_label(tmp_path: Path) -> None:
    legacy = (
        '<w:r><w:fldChar w:fldCharType="begin"><w:ffData><w:name w:val="Check1"/><w:enabled/><w:calcOnExit w:val="0"/>'
        '<w:checkBox><w:sizeAuto/><w:default w:val="1"/></w:checkBox></w:ffData></w:fldChar></w:r>'
        '<w:r><w:instrText xml:space="preserve"> FORMCHECKBOX </w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r>'
        '<w:r><w:fldChar w:fldCharType="end"/></w:r>'
    )
    sym = checkbox(True, "").replace("<w:t></w:t>", '<w:sym w:font="Wingdings" w:char="F0FE"/>')
    body = (
        p("Inspection checklist")
        + f'<w:p>{checkbox(True, "☒")}<w:r><w:t xml:space="preserve"> Seals replaced</w:t></w:r></w:p>'
        + f"<w:p>{checkbox(False, '☐')}<w:r><w:t>Filters cleaned</w:t></w:r></w:p>"
        # the glyph as a symbol-font character, the state saying checked
        + f'<w:p>{sym}<w:r><w:t xml:space="preserve"> Logs signed</w:t></w:r></w:p>'
        + f'<w:p>{legacy}<w:r><w:t xml:space="preserve"> Valves greased</w:t></w:r></w:p>'
        + '<w:p><w:r><w:sym w:font="Wingdings" w:char="F0A8"/><w:t xml:space="preserve"> Paper form box</w:t></w:r></w:p>'
    )
    md = convert(make_docx(tmp_path / "checks.docx", body)).markdown
    assert md == (
        "Inspection checklist\n\n☒ Seals replaced\n\n☐ Filters cleaned\n\n☒ Logs signed\n\n☒ Valves greased\n\n"
        "☐ Paper form box"
    ), md


# -- equations ------------------------------------------------------------------------------------------


def math(xml: str) -> str:
    return f"<m:oMath>{xml}</m:oMath>"


def mr(text: str) -> str:
    return f"<m:r><m:t>{text}</m:t></m:r>"


def test_equations_become_latex_with_every_symbol(tmp_path: Path) -> None:
    frac = f"<m:f><m:num>{mr('a')}</m:num><m:den>{mr('b')}</m:den></m:f>"
    nary = f'<m:nary><m:naryPr><m:chr m:val="∑"/></m:naryPr><m:sub>{mr("i=1")}</m:sub><m:sup>{mr("n")}</m:sup><m:e>{mr("x")}</m:e></m:nary>'
    limit = f"<m:func><m:fName><m:limLow><m:e>{mr('lim')}</m:e><m:lim>{mr('n→∞')}</m:lim></m:limLow></m:fName><m:e>{mr('f')}</m:e></m:func>"
    matrix = f"<m:m><m:mr><m:e>{mr('1')}</m:e><m:e>{mr('0')}</m:e></m:mr><m:mr><m:e>{mr('0')}</m:e><m:e>{mr('1')}</m:e></m:mr></m:m>"
    accent = f'<m:acc><m:accPr><m:chr m:val="\u0302"/></m:accPr><m:e>{mr("θ")}</m:e></m:acc>'
    product = f"{mr('S')}{mr('⋅')}{mr('T')}"  # a symbol and a letter in runs of their own
    sine = f"<m:func><m:fName>{mr('sin')}</m:fName><m:e>{mr('x')}</m:e></m:func>"
    brace = f'<m:d><m:dPr><m:begChr m:val="{{"/><m:endChr m:val=""/></m:dPr><m:e>{mr("x")}</m:e></m:d>'
    ratio = '<w:r><w:t xml:space="preserve">Ratio </w:t></w:r>'
    holds = '<w:r><w:t xml:space="preserve"> holds.</w:t></w:r>'
    body = (
        f"<w:p>{ratio}{math(frac)}{holds}</w:p>"
        f"<w:p><m:oMathPara>{math(nary)}</m:oMathPara></w:p>"
        f"<w:p>{math(limit)}</w:p><w:p>{math(matrix)}</w:p><w:p>{math(accent + mr('+') + sine)}</w:p>"
        f"<w:p>{math(brace)}</w:p><w:p>{math(product)}</w:p>"
    )
    md = convert(make_docx(tmp_path / "math.docx", body)).markdown
    assert md.split("\n\n") == [
        "Ratio $\\frac{a}{b}$ holds.",
        "$$\\sum_{i=1}^{n}{x}$$",
        "$\\lim_{n\\to\\infty}{f}$",
        "$\\begin{matrix}1 & 0 \\\\ 0 & 1\\end{matrix}$",
        "$\\hat{\\theta}+\\sin{x}$",
        "$\\left\\{x\\right.$",
        "$S\\cdot T$",
    ], md


def test_omml_keeps_the_text_of_constructs_it_has_no_latex_for() -> None:
    from lxml import etree

    m = TRANSITIONAL["m"]
    el = etree.fromstring(
        f'<m:oMath xmlns:m="{m}"><m:phant><m:e><m:r><m:t>kept</m:t></m:r></m:e></m:phant></m:oMath>'
    )
    assert omml_latex(el) == "kept"


# -- charts, imported content, a broken part ------------------------------------------------------------


def test_charts_imported_html_and_a_broken_part_lose_only_that_part(tmp_path: Path) -> None:
    c = "http://schemas.openxmlformats.org/drawingml/2006/chart"
    chart = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<c:chartSpace xmlns:c="{c}" xmlns:a="{TRANSITIONAL["a"]}"><c:chart>'
        "<c:title><c:tx><c:rich><a:p><a:r><a:t>Leaks per site</a:t></a:r></a:p></c:rich></c:tx></c:title><c:plotArea><c:barChart><c:ser>"
        '<c:tx><c:strRef><c:strCache><c:pt idx="0"><c:v>Leaks</c:v></c:pt></c:strCache></c:strRef></c:tx>'
        '<c:cat><c:strRef><c:strCache><c:ptCount val="2"/><c:pt idx="0"><c:v>Oslo</c:v></c:pt><c:pt idx="1"><c:v>Bergen</c:v></c:pt></c:strCache></c:strRef></c:cat>'
        '<c:val><c:numRef><c:numCache><c:ptCount val="2"/><c:pt idx="0"><c:v>7</c:v></c:pt><c:pt idx="1"><c:v>3</c:v></c:pt></c:numCache></c:numRef></c:val>'
        "</c:ser></c:barChart></c:plotArea></c:chart></c:chartSpace>"
    )
    graphic = (
        '<w:p><w:r><w:drawing><wp:inline><wp:docPr id="7" name="Chart 7"/><a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/chart">'
        f'<c:chart xmlns:c="{c}" r:id="rIdChart"/></a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>'
    )
    body = p("Leak report.") + graphic + '<w:altChunk r:id="rIdHtml"/>' + p("Closing words.")
    parts = {
        "rIdChart": ("chart", "charts/chart1.xml", chart),
        "rIdHtml": (
            "aFChunk",
            "afchunk.htm",
            "<html><body><h2>Imported part</h2><p>Pasted from a web form.</p></body></html>",
        ),
        "rIdC": ("comments", "comments.xml", "<w:comments {NS}><w:comment w:id='0'><w:p>broken"),
        "rIdF": ("footer", "footer1.xml", header_xml("ftr", "Footer still read")),
    }
    path = make_docx(tmp_path / "mixed.docx", body, parts)
    doc = unitok.convert(path)
    md = doc.markdown
    assert (
        "<!-- chart -->\n**Leaks per site**\n\n|  | Leaks |\n| --- | --- |\n| Oslo | 7 |\n| Bergen | 3 |"
        in md
    ), md
    assert "## Imported part\n\nPasted from a web form.\n\nClosing words." in md
    assert_faithful(
        md,
        "Leak report. Leaks per site Leaks Oslo 7 Bergen 3 Imported part Pasted from a web form. Closing words. Footer still read",
    )
    assert any(w.startswith("comments word/comments.xml left out: malformed XML") for w in doc.warnings), (
        doc.warnings
    )
