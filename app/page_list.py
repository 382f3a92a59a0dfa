"""The dashboard's pages, in menu order: (file in app/pages_/, title, icon). Also read by the tests and the
latency benchmark, so a new page is covered by both without editing them. No streamlit import here."""

PAGES = [
    ("overview.py", "Overview", ":material/home:"),
    ("summary.py", "Summary", ":material/table_chart:"),
    ("heatmap.py", "Alignment heatmap", ":material/grid_on:"),
    ("tree.py", "Model tree", ":material/account_tree:"),
    ("intrinsic_dimension.py", "Intrinsic dimension", ":material/bar_chart:"),
    ("id_vs_ood.py", "In- vs out-of-distribution", ":material/compare_arrows:"),
    ("convergence.py", "Convergence", ":material/trending_up:"),
    ("local_vs_global.py", "Local vs global", ":material/scatter_plot:"),
    ("compare.py", "Compare two models", ":material/difference:"),
    ("score.py", "Score your model", ":material/upload_file:"),
    ("model_cards.py", "Model cards", ":material/badge:"),
    ("dataset_cards.py", "Dataset cards", ":material/dataset:"),
]

PAGE_SLUGS = [f.removesuffix(".py") for f, _, _ in PAGES]
