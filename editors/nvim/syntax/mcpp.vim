" Vim syntax for mcpp policies (the same categories as the VS Code grammar)
if exists('b:current_syntax')
  finish
endif

syn keyword mcppEffect permit forbid
syn keyword mcppDeclaration default hide group limit assert entity
syn keyword mcppClause when unless
syn keyword mcppDecision allow deny hidden visible approval
syn keyword mcppOption max per scope increment
syn keyword mcppWindow minute hour day
syn keyword mcppVariable principal action resource context
syn keyword mcppConditional if then else
syn keyword mcppOperatorWord in has like is
syn keyword mcppConstant true false null
syn match mcppNumber "\<\d\+\(\.\d\+\)\=\([eE][+-]\=\d\+\)\=\>"
syn match mcppOperator "==\|!=\|<=\|>=\|&&\|||\|[<>!]"
syn match mcppProperty "\.\s*\zs\h\w*"
syn match mcppEntityType "\<\h\w*\(::\h\w*\)*\ze::\""
syn match mcppAnnotation "@\h\w*"
syn region mcppString start=+"+ skip=+\\.+ end=+"\|$+ contains=mcppEscape
syn match mcppEscape "\\\(u{\x\+}\|.\)" contained
syn match mcppComment "//.*$" contains=@Spell

hi def link mcppEffect Keyword
hi def link mcppDeclaration Statement
hi def link mcppClause Conditional
hi def link mcppDecision Constant
hi def link mcppOption Keyword
hi def link mcppWindow Constant
hi def link mcppVariable Identifier
hi def link mcppConditional Conditional
hi def link mcppOperatorWord Operator
hi def link mcppConstant Boolean
hi def link mcppNumber Number
hi def link mcppOperator Operator
hi def link mcppProperty Identifier
hi def link mcppEntityType Type
hi def link mcppAnnotation PreProc
hi def link mcppString String
hi def link mcppEscape SpecialChar
hi def link mcppComment Comment

let b:current_syntax = 'mcpp'
