from cart_recovery.demo.generate import main

main()
