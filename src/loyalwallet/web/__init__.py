"""Server-rendered pages: templates, static files, translations (Russian and English)."""
