" .mcpp files are mcpp policies
autocmd BufRead,BufNewFile *.mcpp setfiletype mcpp
