#!/usr/bin/env bash
# Writes .dvc/offline_plots.html: the page `dvc plots show` and `dvc plots diff` fill (.dvc/config names it), with
# Vega, Vega-Lite and Vega-Embed inlined instead of loaded from a CDN, so the plots render with no network.
# The versions are those dvc-render's own page loads. Needs npm (the packages come from the npm registry).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSIONS=(vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "${VERSIONS[@]}" >/dev/null && for t in *.tgz; do mkdir "${t%.tgz}" && tar xzf "$t" -C "${t%.tgz}"; done)
{
  echo '<!DOCTYPE html>'
  echo '<html>'
  echo '<head>'
  echo '    {refresh_tag}'
  echo '    <title>DVC Plot</title>'
  echo "    <!-- ${VERSIONS[*]} inlined by scripts/vendor_vega.sh, so that the page needs no network."
  for package in "$work"/*/package; do
    sed 's/--/- -/g' "$package/LICENSE"
  done
  echo '    -->'
  for name in vega vega-lite vega-embed; do
    echo '    <script>'
    grep -v "^//# sourceMappingURL=" "$work"/"$name"-[0-9]*/package/build/"$name".min.js
    echo
    echo '    </script>'
  done
  echo '    <style>'
  echo '        table { border-spacing: 15px; }'
  echo '    </style>'
  echo '</head>'
  echo '<body>'
  echo '    {plot_divs}'
  echo '</body>'
  echo '</html>'
} > .dvc/offline_plots.html
echo "wrote .dvc/offline_plots.html ($(wc -c < .dvc/offline_plots.html) bytes)"
