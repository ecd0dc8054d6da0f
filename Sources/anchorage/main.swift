import AnchorageCore
import Foundation

exit(AnchorageCLI.main(Array(CommandLine.arguments.dropFirst())))
