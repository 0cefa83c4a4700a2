#!/usr/bin/env bash
# System packages unitok needs, installed with apt-get only where missing (Debian/Ubuntu).
#   tesseract-ocr + tesseract-ocr-<lang> for each of OCR_LANGS (default eng): OCR language data
#   libreoffice-impress, -writer, -calc: legacy .ppt, .doc, .xls (and ODF) files, slide images for Phi-4
#   ffmpeg: audio/video decoding; espeak-ng: speech for the tests; chromium: the tests open the run report
set -euo pipefail
need=()
# OCR_LANGS: the Tesseract language packs to have (Tesseract's codes, e.g. OCR_LANGS="eng deu fra");
# osd is Tesseract's script detection, which ocr.languages: auto uses.
for lang in ${OCR_LANGS:-eng} osd; do
  [ -n "$(ls /usr/share/tesseract-ocr/*/tessdata/"$lang".traineddata 2>/dev/null)" ] \
    || need+=(tesseract-ocr "tesseract-ocr-${lang//_/-}")
done
command -v soffice >/dev/null || need+=(libreoffice-impress)
for app in writer calc; do  # each LibreOffice application is a package of its own
  if command -v dpkg >/dev/null; then
    dpkg -s "libreoffice-$app" >/dev/null 2>&1 || need+=("libreoffice-$app")
  fi
done
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)  # speech fixtures for the audio tests
command -v chromium >/dev/null || need+=(chromium)  # the report test renders report.html headless
if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: present"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${need[*]} (install them with your package manager)" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
