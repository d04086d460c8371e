from fpai_node.cli import main

main()
